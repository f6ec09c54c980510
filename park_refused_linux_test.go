package wsgate_test

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// A connection whose park the poller refuses must read on (parkSelf's contract), not die: here
// the poller cannot be made (epoll_create1 fails with EMFILE: the descriptor table is full, as in
// a reconnect storm at the file limit). parkSelf falls back to ResumeReadLoop without resume(),
// so the read deadline the scanner set in the past (aLongTimeAgo) is still there: the next read
// fails at once, stopReading finds no parkReq, and the connection ends as a "pong timeout".
func TestParkRefusedConnectionReadsOn(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
	})
	ts := startServer(t, rec, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	rc.write(text("hello"))
	rc.expectEcho("hello")

	// Fill the descriptor table: the lowest free descriptor becomes the limit.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := f.Fd()
	f.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(lowest)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// ParkAfter is 50 ms: several parks refused over 400 ms. A park attempt counts the connection
	// in Parked before it asks the poller (the poller may wake it at once), and a refused one
	// takes it back: a sample may catch one attempt in flight, never more, and most find none. A
	// refusal that kept its count would leave Parked at 1 and growing. (Read while the limit
	// holds: once it is lifted the connection may park for real.)
	maxParked, zeros := int64(0), 0
	for end := time.Now().Add(400 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		p := ts.Stats().Parked
		maxParked = max(maxParked, p)
		if p == 0 {
			zeros++
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if maxParked > 1 || zeros == 0 {
		t.Fatalf("Parked without a poller: at most %d, and 0 in %d samples; want at most 1, and mostly 0", maxParked, zeros)
	}
	rec.mu.Lock()
	for _, ce := range rec.closed {
		t.Errorf("the connection ended while its park was refused: %v", ce)
	}
	rec.mu.Unlock()
	rc.write(text("still here"))
	rc.expectEcho("still here")
}

// Soundness probes (pass): a parked connection whose peer ignores Close ends at CloseTimeout, and
// one whose peer stops reading ends on the write timeout, each with OnClose once.
func TestParkedCloseTimeoutAndWriteTimeout(t *testing.T) {
	rec := newRecorder(nil)
	cfg := parkConfig()
	cfg.CloseTimeout, cfg.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.SendQueueBytes = 256 << 20
	ts := startServer(t, rec, cfg)

	deaf, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	c := onlyConn(t, ts)
	_ = c.Close(wsgate.CloseNormal, "bye")
	if _, ce := rec.nextClose(t, 3*time.Second); !errors.Is(ce, wsgate.ErrCloseTimeout) {
		t.Fatalf("Close ignored by a parked peer: %v", ce)
	}
	_ = deaf

	stuck, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	c = onlyConn(t, ts)
	big := make([]byte, 1<<20)
	for range 64 {
		_ = c.Send(wsgate.Binary, big)
	}
	if _, ce := rec.nextClose(t, 5*time.Second); !errors.Is(ce, wsgate.ErrWriteTimeout) {
		t.Fatalf("a parked peer that does not read: %v", ce)
	}
	_ = stuck
	waitFor(t, 5*time.Second, "no connection left", func() bool { return ts.Stats().Connections == 0 && ts.Stats().Parked == 0 })
}

// Soundness probe (passes): a peer that resets its parked connection (RST) is noticed at once.
func TestParkedConnectionReset(t *testing.T) {
	rec := newRecorder(nil)
	ts := startServer(t, rec, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	if tc, ok := rc.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = rc.nc.Close()
	if _, ce := rec.nextClose(t, 2*time.Second); ce.Code != wsgate.CloseAbnormal {
		t.Fatalf("reset while parked: %v", ce)
	}
}
