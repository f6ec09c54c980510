package loadgen

import (
	"math"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in HDR histograms (github.com/HdrHistogram/hdrhistogram-go): 3 significant
// digits from 1 µs to 1 h, in nanoseconds. A histogram is about 200 KB, too much for one per
// connection, so a Recorder keeps a few shards, each behind its own lock; a worker records into
// the shard of its index, and readers merge them.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(time.Hour)
	histDigits  = 3
	shardCount  = 8
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histDigits) }

// Recorder collects latencies from many goroutines: the whole run, and the current interval of
// the time line.
type Recorder struct {
	shards [shardCount]recShard
}

type recShard struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
	_        [64]byte // keep the locks of neighbouring shards off one cache line
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].total, r.shards[i].interval = newHist(), newHist()
	}
	return r
}

// Record adds one latency; worker picks the shard (any int, e.g. a connection's index).
func (r *Recorder) Record(worker int, d time.Duration) {
	v := min(max(int64(d), histLowest), histHighest)
	s := &r.shards[uint(worker)%shardCount]
	s.mu.Lock()
	_ = s.total.RecordValue(v) // cannot fail: v is within the histogram's range
	_ = s.interval.RecordValue(v)
	s.mu.Unlock()
}

// Total returns a merged copy of everything recorded so far.
func (r *Recorder) Total() *hdrhistogram.Histogram { return r.merge(false) }

// TakeInterval returns what was recorded since the previous call, and starts a new interval.
func (r *Recorder) TakeInterval() *hdrhistogram.Histogram { return r.merge(true) }

func (r *Recorder) merge(interval bool) *hdrhistogram.Histogram {
	h := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		if interval {
			h.Merge(s.interval)
			s.interval.Reset()
		} else {
			h.Merge(s.total)
		}
		s.mu.Unlock()
	}
	return h
}

// Latency summarises a histogram, in microseconds.
type Latency struct {
	Count  int64   `json:"count"`
	Min    float64 `json:"min_us"`
	Mean   float64 `json:"mean_us"`
	P50    float64 `json:"p50_us"`
	P90    float64 `json:"p90_us"`
	P99    float64 `json:"p99_us"`
	P999   float64 `json:"p999_us"`
	Max    float64 `json:"max_us"`
	StdDev float64 `json:"stddev_us"`
}

func micros(ns int64) float64 { return float64(ns) / 1e3 }

// summarize reads the usual percentiles of h (all zero when h is empty).
func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count:  h.TotalCount(),
		Min:    micros(h.Min()),
		Mean:   h.Mean() / 1e3,
		P50:    micros(h.ValueAtQuantile(50)),
		P90:    micros(h.ValueAtQuantile(90)),
		P99:    micros(h.ValueAtQuantile(99)),
		P999:   micros(h.ValueAtQuantile(99.9)),
		Max:    micros(h.Max()),
		StdDev: h.StdDev() / 1e3,
	}
}

// SpectrumPoint is one point of the latency-by-percentile curve.
type SpectrumPoint struct {
	Percentile float64 `json:"percentile"`
	Micros     float64 `json:"us"`
}

// spectrum samples the latency-by-percentile curve of h: ten points per decade of 1-q (90 %,
// 99 %, 99.9 %...) up to the largest percentile the count can resolve, then the maximum.
func spectrum(h *hdrhistogram.Histogram) []SpectrumPoint {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	var pts []SpectrumPoint
	last := math.Log10(float64(n)) // beyond 1-1/n every percentile is the maximum
	for k := 0; ; k++ {
		x := float64(k) / 10 // x = -log10(1-q)
		if x > last || x > 6 {
			break
		}
		q := 100 * (1 - math.Pow(10, -x))
		pts = append(pts, SpectrumPoint{Percentile: q, Micros: micros(h.ValueAtQuantile(q))})
	}
	return append(pts, SpectrumPoint{Percentile: 100, Micros: micros(h.Max())})
}
