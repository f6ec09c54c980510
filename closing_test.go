package wsgate_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// The close handshake is bounded by Config.CloseTimeout even when a read clears the heartbeat's
// deadline while the close frame is being written: the peer that never answers is dropped in time,
// not kept until Shutdown.
func TestCloseTimeoutSurvivesAClearedHeartbeatDeadline(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	rec := newRecorder(nil)
	ts := startServer(t, rec, &wsgate.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 5 * time.Second,
		CloseTimeout: closeTimeout})
	rc, _ := dialRaw(t, ts, nil)
	onlyConn(t, ts)
	var once sync.Once
	closed := make(chan time.Time, 1)
	wsgate.SetTestHookRestore(func(c *wsgate.Conn) {
		once.Do(func() {
			// Between the read that proves the peer alive and the clearing of the heartbeat's
			// deadline, the connection is closed and its close frame written.
			closed <- time.Now()
			_ = c.Close(wsgate.CloseNormal, "bye")
			for deadline := time.Now().Add(ioWait); !wsgate.WriterIdle(c) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
	})
	t.Cleanup(func() { wsgate.SetTestHookRestore(nil) })
	rc.nextFrame(opPing)                       // the heartbeat's deadline is armed
	rc.write(frame{fin: true, opcode: opPong}) // and this read clears it
	if got := parseClose(t, rc.nextFrame(opClose).payload); got.code != 1000 {
		t.Fatalf("closed with %d", got.code)
	}
	start := <-closed
	// The client never answers the close frame.
	_, ce := rec.nextClose(t, closeTimeout+3*time.Second)
	if !errors.Is(ce, wsgate.ErrCloseTimeout) {
		t.Fatalf("OnClose %+v, want ErrCloseTimeout", ce)
	}
	if took := time.Since(start); took > closeTimeout+time.Second {
		t.Fatalf("the connection ended %v after Close, want about CloseTimeout (%v)", took, closeTimeout)
	}
}

// A connection that lingers after its close (here: the peer sent a message over the read limit,
// got 1009, and stays silent without closing) does not hold Shutdown past its context.
func TestShutdownContextBoundsALingeringConnection(t *testing.T) {
	ts := startServer(t, nil, &wsgate.Config{ReadLimit: 1024, CloseTimeout: 5 * time.Second})
	rc, _ := dialRaw(t, ts, nil)
	rc.send(frame{fin: true, opcode: opBinary, payload: make([]byte, 1<<20)}.bytes()[:64])
	if got := parseClose(t, rc.nextFrame(opClose).payload); got.code != 1009 {
		t.Fatalf("closed with %d, want 1009", got.code)
	}
	waitFor(t, ioWait, "OnClose", func() bool { return ts.Stats().Connections == 0 })
	ctx, cancel := contextWithTimeout(300 * time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = ts.Shutdown(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Shutdown with a 300ms context took %v", took)
	}
}

// Server.Close during a Shutdown that waits for peers forces them closed, as net/http's Close does.
func TestCloseAfterShutdownForces(t *testing.T) {
	rec := newRecorder(nil)
	ts := startServer(t, rec, &wsgate.Config{CloseTimeout: time.Minute})
	rc, _ := dialRaw(t, ts, nil) // it will never answer the close frame
	onlyConn(t, ts)
	ctx, cancel := contextWithTimeout(time.Minute)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(ctx) }()
	if got := parseClose(t, rc.nextFrame(opClose).payload); got.code != 1001 {
		t.Fatalf("closed with %d, want 1001", got.code)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("Close during Shutdown: %v", err)
	}
	rec.nextClose(t, 2*time.Second)
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Shutdown still waits after Close")
	}
	if err := ts.Close(); !errors.Is(err, wsgate.ErrServerClosed) {
		t.Fatalf("a second Close: %v, want ErrServerClosed", err)
	}
}
