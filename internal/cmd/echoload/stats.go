package main

import (
	"fmt"
	"io"
	"math/bits"
	"slices"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: exact below 64 ns, then 32 buckets per
// power of two (about 3% resolution), up to 2^40 ns.
type hist struct{ n [histBuckets]uint32 }

const (
	histSub     = 5
	histMaxBits = 40
	histBuckets = 2<<histSub + (histMaxBits-histSub-1)<<histSub
)

func histIndex(v uint64) int {
	v = min(v, 1<<histMaxBits-1)
	if v < 2<<histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSub - 1 // v>>e is within [32, 64)
	return 2<<histSub + (e-1)<<histSub + int(v>>e) - 1<<histSub
}

// histValue returns the middle of bucket i.
func histValue(i int) float64 {
	if i < 2<<histSub {
		return float64(i)
	}
	j := i - 2<<histSub
	e := j>>histSub + 1
	m := uint64(j&(1<<histSub-1)) + 1<<histSub
	lo := m << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

func (h *hist) record(d time.Duration) { h.n[histIndex(uint64(max(d, 0)))]++ }

func (h *hist) add(o *hist) {
	for i, v := range o.n {
		h.n[i] += v
	}
}

// quantile returns the q-quantile in nanoseconds (0 if empty).
func (h *hist) quantile(q float64) float64 {
	var total uint64
	for _, v := range h.n {
		total += uint64(v)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, v := range h.n {
		if seen += uint64(v); seen >= rank {
			return histValue(i)
		}
	}
	return histValue(len(h.n) - 1)
}

// result is what echoload reports.
type result struct {
	Conns      int     `json:"conns"`
	Size       int     `json:"size"`
	Window     int     `json:"window"`
	Text       bool    `json:"text"`
	Seconds    float64 `json:"seconds"`
	Messages   uint64  `json:"messages"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	PerConnMin uint64  `json:"per_conn_min"`
	PerConnMed uint64  `json:"per_conn_median"`
	PerConnMax uint64  `json:"per_conn_max"`
	Jain       float64 `json:"jain"`
	Errors     uint64  `json:"errors"` // dial + read/write failures + mismatches
	DialErrors int     `json:"dial_errors"`
	IOErrors   uint64  `json:"io_errors"`
	Mismatches uint64  `json:"mismatches"`
	FirstError string  `json:"first_error,omitempty"`
}

func summarize(o options, ws []*worker, elapsed time.Duration) *result {
	r := &result{Conns: o.conns, Size: o.size, Window: o.window, Text: o.text, Seconds: elapsed.Seconds()}
	var h hist
	counts := make([]uint64, 0, o.conns)
	for _, w := range ws {
		h.add(&w.hist)
		counts = append(counts, w.done)
		r.Messages += w.done
		r.IOErrors += w.errs
		r.Mismatches += w.mismatch
		if w.err != nil && r.FirstError == "" {
			r.FirstError = w.err.Error()
		}
	}
	// Connections that never opened count as zero: they were starved as surely as a slow one.
	for range o.conns - len(ws) {
		counts = append(counts, 0)
	}
	r.DialErrors = o.conns - len(ws)
	r.Errors = uint64(r.DialErrors) + r.IOErrors + r.Mismatches
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(r.Messages) / r.Seconds
	}
	r.P50Micros = h.quantile(0.50) / 1e3
	r.P99Micros = h.quantile(0.99) / 1e3
	slices.Sort(counts)
	r.PerConnMin, r.PerConnMed, r.PerConnMax = counts[0], counts[len(counts)/2], counts[len(counts)-1]
	r.Jain = jain(counts)
	return r
}

// jain is Jain's fairness index (Σx)² / (n·Σx²): 1 when every connection got the same service,
// 1/n when one got it all. It is 1 when nobody got anything.
func jain(xs []uint64) float64 {
	var s, s2 float64
	for _, x := range xs {
		f := float64(x)
		s += f
		s2 += f * f
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

func (r *result) print(w io.Writer) {
	kind := "binary"
	if r.Text {
		kind = "text"
	}
	fmt.Fprintf(w, "%d conns × %d B %s, window %d, %.1fs\n", r.Conns, r.Size, kind, r.Window, r.Seconds)
	fmt.Fprintf(w, "  %d msgs, %.0f msgs/s, p50 %.0f µs, p99 %.0f µs\n", r.Messages, r.MsgsPerSec, r.P50Micros, r.P99Micros)
	fmt.Fprintf(w, "  per conn min/median/max %d/%d/%d, Jain %.3f\n", r.PerConnMin, r.PerConnMed, r.PerConnMax, r.Jain)
	fmt.Fprintf(w, "  errors %d (dial %d, io %d, mismatches %d)", r.Errors, r.DialErrors, r.IOErrors, r.Mismatches)
	if r.FirstError != "" {
		fmt.Fprintf(w, "; first: %s", r.FirstError)
	}
	fmt.Fprintln(w)
}
