package loadgen

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Idle opens c.Conns connections and holds them without traffic for c.Duration (or until c.Hold
// fires or ctx ends). Each connection keeps a reader, so that the server's pings are answered;
// a connection the server ends meanwhile counts as dropped. With c.PID, the process's VmRSS is
// read before dialling and once it has settled after, and divided by the connections opened.
func Idle(ctx context.Context, c Config) (*Result, error) {
	c, err := prepare(c, ModeIdle)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: ModeIdle, URL: c.URL, Conns: c.Conns, PID: c.PID}
	if c.PID > 0 {
		rss, err := ReadRSS(c.PID)
		if err != nil {
			return nil, err
		}
		res.RSSBefore = rss
	}
	m := newMeter(&c, "conns", c.Conns)
	res.Started = m.begun
	m.start()
	rctx, cancel := context.WithTimeout(ctx, c.RampTimeout)
	conns, failed, err := dialAll(rctx, &c, newDialer(&c, c.Conns, 0, nil), c.Conns, &m.conns, nil)
	cancel()
	res.RampSeconds = time.Since(m.begun).Seconds()
	res.Opened, res.DialErrors = c.Conns-failed, failed
	res.noteError(wrapDial(err))

	var closing atomic.Bool
	var dropped atomic.Int64
	var firstDrop sync.Once
	var dropErr error
	var wg sync.WaitGroup
	defer wg.Wait()
	defer closeAll(conns) // before wg.Wait: it ends the readers
	defer closing.Store(true)
	for _, ws := range conns {
		if ws == nil {
			continue
		}
		wg.Go(func() { // owner: Idle; ends when closeAll closes ws, or the server ends it
			for {
				if _, _, err := ws.NextReader(); err != nil {
					if !closing.Load() {
						dropped.Add(1)
						m.conns.Add(-1)
						m.errs.Add(1)
						firstDrop.Do(func() { dropErr = err })
					}
					return
				}
			}
		})
	}
	if c.Ready != nil {
		c.Ready(res.Opened)
	}
	m.setPhase("holding")
	held := time.Now()
	hold := time.NewTimer(c.Duration)
	defer hold.Stop()
	if c.PID > 0 && res.Opened > 0 {
		after, err := settledRSS(ctx, c.PID, min(c.Duration, 10*time.Second))
		if err != nil {
			return nil, err
		}
		res.RSSAfter = after
		res.RSSPerConn = (float64(after) - float64(res.RSSBefore)) / float64(res.Opened)
	}
	select {
	case <-ctx.Done():
	case <-c.Hold:
	case <-hold.C:
	}
	closing.Store(true)
	res.Seconds = time.Since(held).Seconds()
	closeAll(conns)
	wg.Wait() // every reader has ended: what they recorded can be read
	res.Series = m.finish()
	res.Dropped = int(dropped.Load())
	if res.Dropped > 0 {
		res.noteError(fmt.Errorf("connection lost while idle: %w", dropErr))
	}
	res.IOErrors = uint64(res.Dropped)
	res.Errors = uint64(res.DialErrors) + res.IOErrors
	return res, nil
}

// settledRSS reads pid's VmRSS until two readings 200 ms apart differ by less than 0.5 % (the
// server has finished setting up the connections), or bound has passed.
func settledRSS(ctx context.Context, pid int, bound time.Duration) (uint64, error) {
	deadline := time.Now().Add(bound)
	prev, err := ReadRSS(pid)
	if err != nil {
		return 0, err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return prev, nil
		case <-time.After(200 * time.Millisecond):
		}
		cur, err := ReadRSS(pid)
		if err != nil {
			return 0, err
		}
		diff := float64(cur) - float64(prev)
		if diff < 0 {
			diff = -diff
		}
		if diff < float64(prev)*0.005 {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// ReadRSS returns the resident set size of process pid, in bytes, from /proc/PID/status.
func ReadRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("-pid %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) >= 1 { // "1234 kB"
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("-pid %d: no VmRSS in /proc/%d/status", pid, pid)
}
