package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Idle opens c.Conns connections and holds them without traffic for c.Duration (or until c.Hold
// fires or ctx ends). Each connection keeps a reader, so that the server's pings are answered
// (WebSocket pings with a pong; with ProtoCentrifugo, which sends its connect command first, its
// {} pings with {}) and counted; a connection the server ends meanwhile counts as dropped. With
// c.PID, the process's VmRSS is read before dialling and once it has settled after, and divided
// by the connections opened. With c.Reset the connections end with a TCP reset.
func Idle(ctx context.Context, c Config) (*Result, error) {
	c, err := prepare(c, ModeIdle)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: ModeIdle, URL: c.URL, Conns: c.Conns, PID: c.PID}
	if c.Protocol == ProtoCentrifugo {
		res.Protocol = string(c.Protocol)
	}
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
	var setup func(int, *websocket.Conn) error
	if c.Protocol == ProtoCentrifugo {
		setup = func(_ int, ws *websocket.Conn) error { return centrifugo{}.hello(ws, time.Now().Add(c.ConnectTimeout)) }
	}
	rctx, cancel := context.WithTimeout(ctx, c.RampTimeout)
	conns, failed, err := dialAll(rctx, &c, newDialer(&c, c.Conns, 0, nil), c.Conns, &m.conns, setup)
	cancel()
	res.RampSeconds = time.Since(m.begun).Seconds()
	res.Opened, res.DialErrors = c.Conns-failed, failed
	res.noteError(wrapDial(err))

	var closing atomic.Bool
	var dropped, pings atomic.Int64
	var firstDrop sync.Once
	var dropErr error
	var wg sync.WaitGroup
	end := func() {
		if c.Reset {
			resetAll(conns)
		}
		closeAll(conns)
	}
	defer wg.Wait()
	defer end() // before wg.Wait: it ends the readers
	defer closing.Store(true)
	for _, ws := range conns {
		if ws == nil {
			continue
		}
		wg.Go(func() { // owner: Idle; ends when end closes ws, or the server ends it
			err := holdIdle(ws, c.Protocol, &pings)
			if !closing.Load() {
				dropped.Add(1)
				m.conns.Add(-1)
				m.errs.Add(1)
				firstDrop.Do(func() { dropErr = err })
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
	end()
	wg.Wait() // every reader has ended: what they recorded can be read
	res.Series = m.finish()
	res.Dropped = int(dropped.Load())
	res.Pings = uint64(pings.Load())
	if res.Dropped > 0 {
		res.noteError(fmt.Errorf("connection lost while idle: %w", dropErr))
	}
	res.IOErrors = uint64(res.Dropped)
	res.Errors = uint64(res.DialErrors) + res.IOErrors
	return res, nil
}

// holdIdle reads ws until it ends, answering the server's pings and counting them in pings:
// WebSocket pings (with a pong, as gorilla's default handler does) and, with ProtoCentrifugo,
// Centrifugo's {} pings (with {}).
func holdIdle(ws *websocket.Conn, p Protocol, pings *atomic.Int64) error {
	ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil // as gorilla's default handler: the read that follows reports the end
		}
		return err
	})
	if p != ProtoCentrifugo {
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return err
			}
		}
	}
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		answer := centrifugo{}.scan(frame, func(publication) {}, func(uint64, bool) {})
		if answer != nil {
			pings.Add(1)
			if err := send(ws, answer, time.Now().Add(writeWait)); err != nil {
				return err
			}
		}
	}
}

// writeWait bounds a pong (or any answer to a ping) of an idle connection.
const writeWait = 10 * time.Second

// resetAll makes the connections end with a TCP reset when closed (SO_LINGER 0), so that no
// socket is left in TIME_WAIT on either side to weigh on the next measurement's kernel memory.
func resetAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c == nil {
			continue
		}
		if tc, ok := c.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
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
