package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// echoWorker is one connection's side of an echo run: what it sent, got back and measured.
type echoWorker struct {
	idx      int
	ws       *websocket.Conn
	cfg      *Config
	m        *meter
	typ      int
	interval time.Duration // between sends, with -rate; 0: as fast as echoes return
	done     uint64        // echoes verified before the end of the sending phase
	errs     uint64        // read or write failures (at most one per connection: it stops there)
	mismatch uint64        // echoes that differ from what was sent
	err      error
}

// Echo runs c.Conns connections sending c.Size-byte messages for c.Duration, c.Window in flight
// on each, and verifies every echo.
func Echo(ctx context.Context, c Config) (*Result, error) {
	c, err := prepare(c, ModeEcho)
	if err != nil {
		return nil, err
	}
	m := newMeter(&c, "msgs", c.Conns)
	m.start()
	res := &Result{Mode: ModeEcho, URL: c.URL, Started: m.begun, Conns: c.Conns, Size: c.Size,
		Window: c.Window, Text: c.Text, Rate: c.Rate}
	rctx, cancel := context.WithTimeout(ctx, c.RampTimeout)
	conns, failed, err := dialAll(rctx, &c, newDialer(&c, c.Conns, c.Size, nil), c.Conns, &m.conns, nil)
	cancel()
	defer closeAll(conns)
	res.DialErrors = failed
	res.noteError(wrapDial(err))
	if failed == c.Conns {
		res.Series = m.finish()
		return nil, fmt.Errorf("every dial failed: %w", err)
	}
	typ := websocket.BinaryMessage
	if c.Text {
		typ = websocket.TextMessage
	}
	var interval time.Duration
	if c.Rate > 0 {
		interval = time.Duration(float64(c.Conns) / c.Rate * float64(time.Second))
	}
	workers := make([]*echoWorker, 0, len(conns))
	for i, ws := range conns {
		if ws != nil {
			workers = append(workers, &echoWorker{idx: i, ws: ws, cfg: &c, m: m, typ: typ, interval: interval})
		}
	}
	m.setPhase("running")
	start := time.Now()
	end := start.Add(c.Duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { // owner: Echo; ends by end+Drain at the latest (deadlines)
			deadline := end.Add(c.Drain)
			_ = w.ws.SetReadDeadline(deadline)
			_ = w.ws.SetWriteDeadline(deadline)
			if c.Window == 1 {
				w.closedLoop(ctx, start, end)
			} else {
				w.pipelined(ctx, start, end)
			}
		})
	}
	wg.Wait()
	elapsed := min(time.Since(start), c.Duration)
	res.Series = m.finish()
	res.Seconds = elapsed.Seconds()
	counts := make([]uint64, c.Conns)
	for _, w := range workers {
		counts[w.idx] = w.done
		res.Messages += w.done
		res.IOErrors += w.errs
		res.Mismatches += w.mismatch
		res.noteError(w.err)
	}
	res.Errors = uint64(res.DialErrors) + res.IOErrors + res.Mismatches
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Messages) / res.Seconds
		res.MBPerSec = res.MsgsPerSec * float64(c.Size) / 1e6
	}
	res.fillLatency(m.rec)
	res.fillFairness(counts)
	return res, nil
}

func wrapDial(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("dial: %w", err)
}

// Messages are printable ASCII (valid as text too): a fixed filler, stamped with the connection
// index and the sequence number up front so that a misrouted or reordered echo is caught.

// newPayload returns a message buffer of n bytes holding the filler.
func newPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// stamp writes "iiiiii:ssssssssss:" (hex) over the start of p, as far as it fits.
func stamp(p []byte, idx int, seq uint64) {
	const hexdig = "0123456789abcdef"
	var h [18]byte
	for i := 5; i >= 0; i-- {
		h[i] = hexdig[idx&0xf]
		idx >>= 4
	}
	h[6] = ':'
	for i := 16; i >= 7; i-- {
		h[i] = hexdig[seq&0xf]
		seq >>= 4
	}
	h[17] = ':'
	copy(p, h[:])
}

// readEcho reads one message into buf (cap > len(want)) and reports whether it equals want.
func (w *echoWorker) readEcho(buf, want []byte) (bool, error) {
	typ, r, err := w.ws.NextReader()
	if err != nil {
		return false, err
	}
	n, err := io.ReadFull(r, buf[:cap(buf)])
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
	case err != nil:
		return false, err
	default: // longer than expected: drain it
		if _, err = io.Copy(io.Discard, r); err != nil {
			return false, err
		}
	}
	ok := typ == w.typ && bytes.Equal(buf[:n], want)
	if !ok && w.mismatch == 0 {
		w.err = mismatchError(buf[:n], want, w.cfg.Suffix)
	}
	return ok, nil
}

// mismatchError says how an echo differed, with a hint when the server appends something.
func mismatchError(got, want []byte, suffix string) error {
	base := want[:len(want)-len(suffix)]
	if len(got) > len(base) && bytes.HasPrefix(got, base) {
		extra := got[len(base):]
		return fmt.Errorf("echo mismatch: the reply is the message followed by %.40q; pass -suffix %.40q if the server always appends it (wsgate serve: ' done')", extra, extra)
	}
	return fmt.Errorf("echo mismatch: sent %d bytes starting %.24q, got %d bytes starting %.24q", len(want), want, len(got), got)
}

// fail books the connection's one I/O error: after it the connection stops.
func (w *echoWorker) fail(err error) {
	if w.errs == 0 {
		if w.err == nil {
			w.err = err
		}
		w.errs++
		w.m.errs.Add(1)
	}
}

// pace waits until the seq-th send is due under -rate (the phase spreads connections apart).
func (w *echoWorker) pace(ctx context.Context, start time.Time, seq uint64) {
	if w.interval <= 0 {
		return
	}
	phase := w.interval * time.Duration(w.idx) / time.Duration(w.cfg.Conns)
	due := start.Add(phase + time.Duration(seq)*w.interval)
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// want returns msg followed by the server's suffix, in a buffer of its own.
func (w *echoWorker) want(msg []byte) []byte { return append(bytes.Clone(msg), w.cfg.Suffix...) }

// closedLoop sends one message, waits for its echo, and again, until end.
func (w *echoWorker) closedLoop(ctx context.Context, start, end time.Time) {
	msg := newPayload(w.cfg.Size)
	want := w.want(msg)
	buf := make([]byte, 0, len(want)+64) // room to show what a wrong echo added
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		w.pace(ctx, start, seq)
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		stamp(msg, w.idx, seq)
		stamp(want, w.idx, seq)
		if err := w.ws.WriteMessage(w.typ, msg); err != nil {
			w.fail(err)
			return
		}
		ok, err := w.readEcho(buf, want)
		if err != nil {
			w.fail(err)
			return
		}
		w.count(ok, t0, end)
	}
}

// count books one echo: a mismatch, or a verified echo (with its latency) if it came back before
// the end of the measured phase.
func (w *echoWorker) count(ok bool, t0, end time.Time) {
	if !ok {
		w.mismatch++
		w.m.errs.Add(1)
		return
	}
	if t1 := time.Now(); t1.Before(end) {
		w.done++
		w.m.count.Add(1)
		w.m.rec.Record(w.idx, t1.Sub(t0))
	}
}

// pipelined keeps up to Window messages in flight: a writer sends while a slot is free, the reader
// frees a slot per echo. Echoes come back in order on one connection, so the reader knows which
// message each one answers.
func (w *echoWorker) pipelined(ctx context.Context, start, end time.Time) {
	slots := make(chan struct{}, w.cfg.Window)
	sentAt := make(chan time.Time, w.cfg.Window)
	var werr atomic.Value
	go func() { // owner: pipelined; ends at end, or on a write error (the reader then sees it)
		defer close(sentAt)
		msg := newPayload(w.cfg.Size)
		for seq := uint64(0); ctx.Err() == nil; seq++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			w.pace(ctx, start, seq)
			t0 := time.Now()
			if !t0.Before(end) {
				return
			}
			stamp(msg, w.idx, seq)
			sentAt <- t0
			if err := w.ws.WriteMessage(w.typ, msg); err != nil {
				werr.Store(err)
				_ = w.ws.Close() // wake the reader, which waits for this message's echo
				return
			}
		}
	}()
	want := w.want(newPayload(w.cfg.Size))
	buf := make([]byte, 0, len(want)+64) // room to show what a wrong echo added
	seq := uint64(0)
	for t0 := range sentAt {
		if w.errs == 0 {
			stamp(want, w.idx, seq)
			ok, err := w.readEcho(buf, want)
			if err != nil {
				if e, _ := werr.Load().(error); e != nil {
					err = e
				}
				w.fail(err)
				_ = w.ws.Close() // the writer then fails fast too
			} else {
				w.count(ok, t0, end)
			}
		}
		seq++
		<-slots
	}
	if w.errs == 0 {
		if e, _ := werr.Load().(error); e != nil && !errors.Is(e, websocket.ErrCloseSent) {
			w.fail(e)
		}
	}
}
