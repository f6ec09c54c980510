package main

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

// drainGrace bounds how long, after the sending phase, a connection may take to get back the
// echoes still in flight (and how long any single read or write may block).
const drainGrace = 10 * time.Second

// worker is one connection's side of the load: what it sent, got back and measured.
type worker struct {
	idx      int
	ws       *websocket.Conn
	o        *options
	typ      int
	done     uint64 // echoes verified before the end of the sending phase
	errs     uint64 // read or write failures (at most one per connection: it stops there)
	mismatch uint64 // echoes that differ from what was sent
	err      error
	hist     hist
}

// load runs the timed echo phase over o.conns connections.
func load(ctx context.Context, o options) (*result, error) {
	conns, failed, err := dialAll(ctx, o, o.conns)
	defer closeAll(conns)
	if failed == o.conns {
		return nil, fmt.Errorf("every dial failed: %w", err)
	}
	typ := websocket.BinaryMessage
	if o.text {
		typ = websocket.TextMessage
	}
	var workers []*worker
	for i, c := range conns {
		if c != nil {
			workers = append(workers, &worker{idx: i, ws: c, o: &o, typ: typ})
		}
	}
	start := time.Now()
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { // owner: load; ends by end+drainGrace at the latest (deadlines)
			defer wg.Done()
			deadline := end.Add(drainGrace)
			_ = w.ws.SetReadDeadline(deadline)
			_ = w.ws.SetWriteDeadline(deadline)
			if o.window == 1 {
				w.closedLoop(ctx, end)
			} else {
				w.pipelined(ctx, end)
			}
		}()
	}
	wg.Wait()
	res := summarize(o, workers, time.Duration(min(time.Since(start), o.duration)))
	res.DialErrors = failed
	if err != nil && res.FirstError == "" {
		res.FirstError = "dial: " + err.Error()
	}
	return res, nil
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

// readEcho reads one message into buf (cap ≥ o.size+1) and reports whether it equals want.
func (w *worker) readEcho(buf, want []byte) (bool, error) {
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
		_, err = io.Copy(io.Discard, r)
		if err != nil {
			return false, err
		}
	}
	return typ == w.typ && bytes.Equal(buf[:n], want), nil
}

func (w *worker) fail(err error) {
	if w.err == nil {
		w.err = err
		w.errs++
	}
}

// closedLoop sends one message, waits for its echo, and again, until end.
func (w *worker) closedLoop(ctx context.Context, end time.Time) {
	msg := newPayload(w.o.size)
	buf := make([]byte, 0, w.o.size+1)
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		stamp(msg, w.idx, seq)
		if err := w.ws.WriteMessage(w.typ, msg); err != nil {
			w.fail(err)
			return
		}
		ok, err := w.readEcho(buf, msg)
		if err != nil {
			w.fail(err)
			return
		}
		t1 := time.Now()
		if !ok {
			w.mismatch++
		} else if t1.Before(end) {
			w.done++
			w.hist.record(t1.Sub(t0))
		}
	}
}

// pipelined keeps up to window messages in flight: a writer sends while a slot is free, the reader
// frees a slot per echo. Echoes come back in order on one connection, so the reader knows which
// message each one answers.
func (w *worker) pipelined(ctx context.Context, end time.Time) {
	slots := make(chan struct{}, w.o.window)
	sentAt := make(chan time.Time, w.o.window)
	var werr atomic.Value
	go func() { // owner: pipelined; ends at end, or on a write error (the reader then sees it)
		defer close(sentAt)
		msg := newPayload(w.o.size)
		for seq := uint64(0); ctx.Err() == nil; seq++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
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
	want := newPayload(w.o.size)
	buf := make([]byte, 0, w.o.size+1)
	seq := uint64(0)
	for t0 := range sentAt {
		if w.err == nil {
			stamp(want, w.idx, seq)
			ok, err := w.readEcho(buf, want)
			switch {
			case err != nil:
				if e, _ := werr.Load().(error); e != nil {
					err = e
				}
				w.fail(err)
				_ = w.ws.Close() // the writer then fails fast too
			case !ok:
				w.mismatch++
			default:
				if t1 := time.Now(); t1.Before(end) {
					w.done++
					w.hist.record(t1.Sub(t0))
				}
			}
		}
		seq++
		<-slots
	}
	if w.err == nil {
		if e, _ := werr.Load().(error); e != nil && !errors.Is(e, websocket.ErrCloseSent) {
			w.fail(e)
		}
	}
}
