package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Connect runs c.Conns workers that each open a connection (TCP connect and WebSocket upgrade),
// then close it with the close handshake, and again, for c.Duration: handshakes per second and
// the latency of each opening. With c.Storm it runs a storm instead (Storm).
func Connect(ctx context.Context, c Config) (*Result, error) {
	if c.Storm {
		return Storm(ctx, c)
	}
	c, err := prepare(c, ModeConnect)
	if err != nil {
		return nil, err
	}
	m := newMeter(&c, "handshakes", c.Conns)
	res := &Result{Mode: ModeConnect, URL: c.URL, Started: m.begun, Conns: c.Conns}
	m.setPhase("running")
	m.start()
	d := newDialer(&c, c.Conns, 0, nil)
	start := time.Now()
	end := start.Add(c.Duration)
	rctx, cancel := context.WithDeadline(ctx, end.Add(c.ConnectTimeout))
	defer cancel()
	counts := make([]uint64, c.Conns)
	errs := make([]error, c.Conns)
	failures := make([]uint64, c.Conns)
	var wg sync.WaitGroup
	for w := range c.Conns {
		wg.Go(func() { // owner: Connect; ends at end, or with rctx
			for i := w; time.Now().Before(end) && rctx.Err() == nil; i += c.Conns {
				t0 := time.Now()
				ws, err := d.dial(rctx, i)
				if err == nil {
					lat := time.Since(t0)
					m.conns.Add(1)
					err = closeGracefully(ws, c.ConnectTimeout)
					m.conns.Add(-1)
					if err != nil {
						err = fmt.Errorf("close handshake: %w", err)
					} else if t0.Before(end) {
						counts[w]++
						m.count.Add(1)
						m.rec.Record(w, lat)
					}
				}
				if err != nil {
					if rctx.Err() != nil && !time.Now().Before(end) {
						return // cut off by the end of the run, not a failure of the server
					}
					failures[w]++
					m.errs.Add(1)
					if errs[w] == nil {
						errs[w] = err
					}
					// Do not spin against a server that refuses: a failure costs at least 10 ms.
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	res.Seconds = min(time.Since(start), c.Duration).Seconds()
	res.Series = m.finish()
	for w := range c.Conns {
		res.Messages += counts[w]
		res.DialErrors += int(failures[w])
		res.noteError(errs[w])
	}
	res.Errors = uint64(res.DialErrors)
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Messages) / res.Seconds
	}
	res.fillLatency(m.rec)
	res.fillFairness(counts)
	return res, nil
}
