package wsgate_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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

// A client that floods requests and never reads their replies is closed as a slow consumer: from
// then on the server reads a bounded amount of what it sends, writes the close frame when the
// socket allows, and drops it at the close timeout. A client that resumes reading within the close
// timeout gets whole frames, the close frame, and the end of the stream (FIN), not truncated
// frames or a reset.
func TestSlowConsumerIsClosedNotReset(t *testing.T) {
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprint("resume=", resume), func(t *testing.T) {
			closeTimeout := 500 * time.Millisecond
			if resume {
				closeTimeout = 3 * time.Second // time to read what the sockets hold, on a loaded machine
			}
			began := make(chan context.Context, 1)
			var once sync.Once
			rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
				once.Do(func() { began <- c.Context() })
				echoDone(c, m)
			})
			ts := startServer(t, rec, &wsgate.Config{CloseTimeout: closeTimeout, WriteTimeout: 5 * time.Second})
			rc, _ := dialRaw(t, ts, nil)
			_ = rc.nc.(*net.TCPConn).SetWriteBuffer(64 << 10)

			var b []byte
			for len(b) < 64<<10 {
				b = append(b, text(strings.Repeat("r", 1000)).bytes()...)
			}
			var written atomic.Int64
			stop := make(chan struct{})
			flooded := make(chan struct{})
			go func() {
				defer close(flooded)
				for off := 0; ; {
					select {
					case <-stop:
						return
					default:
					}
					_ = rc.nc.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
					n, err := rc.nc.Write(b[off:])
					written.Add(int64(n))
					off = (off + n) % len(b) // a write cut by its deadline goes on where it stopped
					if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						return // the server dropped the connection
					}
				}
			}()
			stopFlood := sync.OnceFunc(func() { close(stop); <-flooded })
			defer stopFlood()

			var ctx context.Context
			select {
			case ctx = <-began:
			case <-time.After(ioWait):
				t.Fatal("no request reached the handler")
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the client was never closed as a slow consumer")
			}
			start, before := time.Now(), written.Load()

			if resume {
				stopFlood()
				time.Sleep(closeTimeout / 10) // a client that resumes reading a little later
				frames := 0
				for {
					f, err := rc.readFrame()
					if err != nil {
						t.Fatalf("after %d whole frames: %v", frames, err)
					}
					if err := checkServerFrame(f, false); err != nil {
						t.Fatal(err)
					}
					if f.opcode == opClose {
						if got := parseClose(t, f.payload); got.code != 1013 || got.reason != "slow consumer" {
							t.Fatalf("closed with %d %q, want 1013 \"slow consumer\"", got.code, got.reason)
						}
						break
					}
					frames++
				}
				_ = rc.nc.SetReadDeadline(start.Add(closeTimeout + 2*time.Second))
				if _, err := rc.br.ReadByte(); err != io.EOF {
					t.Fatalf("after the close frame: %v; want the end of the stream (FIN), not a reset or more", err)
				}
			}

			_, ce := rec.nextClose(t, 10*time.Second)
			took := time.Since(start)
			stopFlood()
			// What the client could still write after the close began: what the server read, plus
			// what the two sockets' buffers took (the server's receive buffer may grow to
			// net.ipv4.tcp_rmem's maximum, 32 MiB here).
			after := written.Load() - before
			t.Logf("the client wrote %.1f MiB after the close began; the connection ended after %v", float64(after)/(1<<20), took.Round(time.Millisecond))
			if !resume && after > 48<<20 {
				t.Errorf("the server kept reading a slow consumer after closing it: %d MiB", after>>20)
			}
			if ce.Code != wsgate.CloseTryAgainLater || !errors.Is(ce, wsgate.ErrSlowConsumer) {
				t.Fatalf("closed with %+v, want 1013 slow consumer", ce)
			}
			if took > closeTimeout+time.Second {
				t.Fatalf("the connection was dropped %v after its close began; want within CloseTimeout (%v)", took, closeTimeout)
			}
		})
	}
}

// With permessage-deflate the transport writes the frames; a write that times out in the middle of
// one must seal the wire all the same, or the transport's own close frame (1001 "client going
// away", written when its write fails) lands inside the half-written frame, where a peer reads it
// as payload. The peer here reads slowly, so that the write times out but the socket takes bytes.
func TestWriteTimeoutSealsTheWireWithCompression(t *testing.T) {
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big) // incompressible: as many bytes on the wire
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) { _ = c.Send(wsgate.Binary, big) })
	ts := startServer(t, rec, &wsgate.Config{Compression: true, WriteTimeout: 300 * time.Millisecond,
		SendQueueBytes: 64 << 20})
	rc, resp := dialRaw(t, ts, func(h http.Header) { h.Set("Sec-WebSocket-Extensions", "permessage-deflate") })
	if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
		t.Fatal("permessage-deflate was not negotiated")
	}
	rc.write(text("go"))
	var got []byte
	buf := make([]byte, 4<<10)
	ended := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if !ended {
			select {
			case id := <-rec.closes: // the write timed out: read the rest at full speed
				rec.mu.Lock()
				err := rec.closed[id]
				rec.mu.Unlock()
				if !errors.Is(err, wsgate.ErrWriteTimeout) {
					t.Errorf("OnClose got %v, want ErrWriteTimeout", err)
				}
				ended = true
			case <-time.After(10 * time.Millisecond): // a slow reader
			}
		}
		_ = rc.nc.SetReadDeadline(time.Now().Add(ioWait))
		n, err := rc.br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !ended {
		t.Fatalf("the write never timed out; %d bytes read", len(got))
	}
	if len(got) >= len(big) {
		t.Fatalf("read %d bytes: the whole message, so no write was cut", len(got))
	}
	if i := bytes.Index(got, []byte("going away")); i >= 0 {
		t.Fatalf("a close frame follows the half-written frame, at the end of the %d bytes read: % x", len(got), got[max(i-16, 0):])
	}
}

// Stats().Sent counts the messages written, not those a sealed wire discarded. Here a sender keeps
// queueing while the peer closes: the batches taken between the answer to its close frame (which
// seals the wire) and the end of the connection are discarded, and must not count; those written
// before it must, even when the writer is paused (a loaded machine) after writing one while the
// close is answered and the connection ends.
func TestSentCountsOnlyWhatWasWritten(t *testing.T) {
	// The writer pauses after each batch, out of the wire's lock, as a loaded machine may pause it:
	// the peer's close is answered, and the connection ends, meanwhile.
	wsgate.SetTestHookWritten(func(*wsgate.Conn) { time.Sleep(2 * time.Millisecond) })
	t.Cleanup(func() { wsgate.SetTestHookWritten(nil) })
	for _, compression := range []bool{false, true} {
		t.Run(fmt.Sprint("compression=", compression), func(t *testing.T) {
			rec := newRecorder(nil)
			ts := startServer(t, rec, &wsgate.Config{SlowConsumer: wsgate.PolicyDropNewest, Compression: compression})
			for trial := range 100 {
				rc, _ := dialRaw(t, ts, func(h http.Header) {
					if compression {
						h.Set("Sec-WebSocket-Extensions", "permessage-deflate")
					}
				})
				c := onlyConn(t, ts)
				sending := make(chan struct{})
				go func() {
					defer close(sending)
					for !errors.Is(c.Send(wsgate.Text, []byte("m")), wsgate.ErrClosed) {
					}
				}()
				data := 0
				for {
					f, err := rc.readFrame()
					if err != nil {
						t.Fatalf("trial %d, after %d data messages: %v", trial, data, err)
					}
					if f.opcode == opClose {
						break
					}
					if data++; data == 100 {
						rc.write(closeFrame(1000, "bye"))
					}
				}
				rec.nextClose(t, ioWait)
				<-sending
				if sent := c.Stats().Sent; sent != uint64(data) {
					t.Fatalf("trial %d: Stats().Sent = %d, but the peer received %d messages", trial, sent, data)
				}
				rc.nc.Close()
			}
		})
	}
}

// Stats().Sent counts a message once the socket has taken its last byte, also when the socket
// takes a burst only in parts: frames of every header size, gathered in the wire's stash, cut by
// a full socket at any byte (a burst written inline stops at the first short write), and written
// on by the writer goroutine as the peer reads. Each round's burst fills the socket afresh.
func TestSentCountsMessagesCutByAFullSocket(t *testing.T) {
	// Mostly frames the stash gathers (up to maxCork, 64 KiB), so that the socket fills in the
	// middle of the stash, not of a big frame written alone.
	sizes := []int{1, 125, 126, 300, 5000, 20000, 3, 65535, 1, 125, 126, 300, 5000, 20000, 3, 70000}
	const n, rounds = 600, 5 // about 7 MiB a round: more than the sockets hold
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		for i := range n {
			if err := c.Send(wsgate.Binary, make([]byte, sizes[i%len(sizes)])); err != nil {
				t.Errorf("Send %d: %v", i, err)
				return
			}
		}
	})
	ts := startServer(t, rec, &wsgate.Config{SendQueueBytes: 64 << 20, SendQueueMessages: n,
		WriteTimeout: time.Minute})
	rc, _ := dialRaw(t, ts, nil)
	_ = rc.nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	c := onlyConn(t, ts)
	for r := range uint64(rounds) {
		rc.write(text("go"))
		waitFor(t, ioWait, "the socket to fill", func() bool { return c.Stats().Queued > 0 })
		if sent := c.Stats().Sent; sent >= (r+1)*n {
			t.Fatalf("round %d: Stats().Sent = %d with messages still queued", r, sent)
		}
		for i := range n {
			f, err := rc.readFrame()
			if err != nil {
				t.Fatalf("round %d, message %d: %v", r, i, err)
			}
			if want := sizes[i%len(sizes)]; f.opcode != opBinary || len(f.payload) != want {
				t.Fatalf("round %d, message %d: opcode %d, %d bytes; want a binary message of %d", r, i, f.opcode, len(f.payload), want)
			}
		}
		want := (r + 1) * n
		waitFor(t, ioWait, "Stats().Sent to count every message", func() bool { return c.Stats().Sent >= want })
		if sent := c.Stats().Sent; sent != want {
			t.Fatalf("round %d: Stats().Sent = %d, but the peer received %d messages", r, sent, want)
		}
	}
}
