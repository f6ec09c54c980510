package wsgate_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// parkConfig parks after 50 ms: MessageTimeout sets the heartbeat's tick to 50 ms, and pings
// stay far away (25 s) unless a test asks for them.
func parkConfig() *wsgate.Config {
	return &wsgate.Config{ParkAfter: 50 * time.Millisecond, MessageTimeout: 500 * time.Millisecond}
}

// waitParked waits until n connections of ts are parked.
func waitParked(t *testing.T, ts *testServer, n int64) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d parked connections", n), func() bool { return ts.Stats().Parked == n })
}

// Idle connections park: each gives back its reader goroutine, and Stats says so; a message wakes
// each, and is echoed, in order, as before.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	ts := startServer(t, echoDone, parkConfig())
	base := runtime.NumGoroutine()
	const n = 50
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i], _ = dialRaw(t, ts, nil)
		conns[i].write(text("hello"))
		conns[i].expectEcho("hello")
	}
	waitParked(t, ts, n)
	// The heartbeat and the poller, and a little slack for the HTTP server's own goroutines.
	waitFor(t, 5*time.Second, "one goroutine less per connection", func() bool { return runtime.NumGoroutine() <= base+4 })
	if m := ts.Metrics(); m.Parked != n {
		t.Fatalf("Metrics().Parked = %d, want %d", m.Parked, n)
	}
	// Writing does not need a reader: a message sent to parked connections leaves them parked.
	ts.Range(func(c *wsgate.Conn) bool { _ = c.Send(wsgate.Text, []byte("push done")); return true })
	for _, rc := range conns {
		rc.expectEcho("push")
	}
	if p := ts.Stats().Parked; p != n {
		t.Fatalf("Parked = %d after a push, want %d", p, n)
	}
	for round := range 3 {
		for i, rc := range conns {
			rc.write(text(fmt.Sprintf("r%d c%d a", round, i)), text(fmt.Sprintf("r%d c%d b", round, i)))
		}
		for i, rc := range conns {
			rc.expectEcho(fmt.Sprintf("r%d c%d a", round, i))
			rc.expectEcho(fmt.Sprintf("r%d c%d b", round, i))
		}
		waitParked(t, ts, n)
	}
	if w := ts.Stats().Wakeups; w < 3*n {
		t.Fatalf("Stats().Wakeups = %d, want at least %d", w, 3*n)
	}
}

// Messages pipelined across park and wake-up boundaries keep their order, with none lost: bursts
// in one write, in pieces, and a message split across a park.
func TestParkedConnectionKeepsOrder(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
	})
	ts := startServer(t, rec, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	seq := 0
	for round := range 10 {
		waitParked(t, ts, 1)
		var burst []byte
		first := seq
		for range 40 {
			burst = append(burst, text(fmt.Sprintf("m%d", seq)).bytes()...)
			seq++
		}
		if round%2 == 0 {
			rc.send(burst)
		} else { // in pieces of 7 bytes: frames cut anywhere
			for off := 0; off < len(burst); off += 7 {
				rc.send(burst[off:min(off+7, len(burst))])
			}
		}
		for i := first; i < seq; i++ {
			rc.expectEcho(fmt.Sprintf("m%d", i))
		}
	}
	// A frame whose pieces come slower than ParkAfter: the connection does not park in the middle
	// of it, and the message arrives whole.
	waitParked(t, ts, 1)
	f := text("split across parks").bytes()
	w0 := ts.Stats().Wakeups
	rc.send(f[:3])
	waitFor(t, 5*time.Second, "the wake-up", func() bool { return ts.Stats().Wakeups > w0 })
	time.Sleep(150 * time.Millisecond) // three ticks: a park would be due if the frame were ignored
	if p := ts.Stats().Parked; p != 0 {
		t.Fatalf("parked in the middle of a frame: Parked = %d", p)
	}
	rc.send(f[3:])
	rc.expectEcho("split across parks")
	if rec.overlap.Load() {
		t.Fatal("two OnMessage calls of one connection overlapped")
	}
}

// A parked connection keeps its heartbeat: a peer that answers pings stays, parked between them;
// one that does not is closed with the pong timeout, within PingInterval+PongTimeout.
func TestParkedConnectionHeartbeat(t *testing.T) {
	rec := newRecorder(nil)
	cfg := parkConfig()
	cfg.PingInterval, cfg.PongTimeout = 300*time.Millisecond, 300*time.Millisecond
	ts := startServer(t, rec, cfg)

	// The answering peer: a goroutine that answers every ping, and counts them.
	live, _ := dialRaw(t, ts, nil)
	var pings atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_ = live.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			f, err := live.readFrame()
			if err != nil {
				return
			}
			if f.opcode == opPing {
				pings.Add(1)
				b := frame{fin: true, opcode: opPong, payload: f.payload}.bytes()
				if _, err := live.nc.Write(b); err != nil {
					return
				}
			}
		}
	}()
	waitFor(t, 10*time.Second, "5 pings answered", func() bool { return pings.Load() >= 5 })
	if st := ts.Stats(); st.Connections != 1 {
		t.Fatalf("the answering peer was dropped: %+v", st)
	}
	if ts.Stats().Wakeups < 3 { // the first ping may come before the first park
		t.Fatalf("Wakeups = %d: the pongs should have woken the parked connection", ts.Stats().Wakeups)
	}

	// The silent peer: it reads nothing and answers nothing.
	start := time.Now()
	silent, _ := dialRaw(t, ts, nil)
	_ = silent
	_, ce := rec.nextClose(t, 5*time.Second)
	if took := time.Since(start); ce.Code != wsgate.CloseAbnormal || !errors.Is(ce, wsgate.ErrPongTimeout) || took > 2*time.Second {
		t.Fatalf("silent peer: %v after %v, want 1006 pong timeout within about %v", ce, took, cfg.PingInterval+cfg.PongTimeout)
	}
	if m := ts.Metrics(); m.PongTimeouts != 1 {
		t.Fatalf("Metrics().PongTimeouts = %d, want 1", m.PongTimeouts)
	}
	if st := ts.Stats(); st.Connections != 1 {
		t.Fatalf("the answering peer was dropped: %+v", st)
	}
	_ = live.nc.Close()
	<-done
}

// A parked connection's end is reported once, with the right code: the peer's close frame, the
// peer dropping TCP, and Conn.Close and CloseNow from the server.
func TestParkedConnectionEnds(t *testing.T) {
	rec := newRecorder(nil)
	ts := startServer(t, rec, parkConfig())

	peerClose, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	peerClose.write(closeFrame(4001, "bye"))
	if got := peerClose.expectClose(); got.code != 4001 {
		t.Fatalf("the server answered %d, want 4001", got.code)
	}
	if _, ce := rec.nextClose(t, 5*time.Second); ce.Code != 4001 || !ce.Remote {
		t.Fatalf("peer close: %v", ce)
	}

	drop, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	_ = drop.nc.Close()
	if _, ce := rec.nextClose(t, 5*time.Second); ce.Code != wsgate.CloseAbnormal || ce.Reason != "connection lost" {
		t.Fatalf("peer dropped: %v", ce)
	}

	closed, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	var c *wsgate.Conn
	ts.Range(func(x *wsgate.Conn) bool { c = x; return false })
	_ = c.Close(wsgate.CloseNormal, "done")
	if got := closed.nextFrame(opClose); parseClose(t, got.payload).code != 1000 {
		t.Fatalf("close frame %v", got)
	}
	closed.write(closeFrame(1000, ""))
	if _, ce := rec.nextClose(t, 5*time.Second); ce.Code != wsgate.CloseNormal || ce.Remote {
		t.Fatalf("Close: %v", ce)
	}

	now, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	ts.Range(func(x *wsgate.Conn) bool { c = x; return false })
	c.CloseNow()
	if _, ce := rec.nextClose(t, 5*time.Second); ce.Code != wsgate.CloseAbnormal || ce.Reason != "closed by server" {
		t.Fatalf("CloseNow: %v", ce)
	}
	if frames := now.drain(); len(frames) != 0 {
		t.Fatalf("CloseNow sent %v", frames)
	}

	waitFor(t, 5*time.Second, "no connection left", func() bool { return ts.Stats().Connections == 0 && ts.Stats().Parked == 0 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for id, ev := range rec.events {
		if strings.Join(ev, ",") != "open,close" {
			t.Errorf("connection %d: %v, want open,close", id, ev)
		}
	}
}

// Shutdown sends every parked connection 1001, and Close drops them: no goroutine is left
// (TestMain checks), no OnClose missing.
func TestParkedConnectionsShutdown(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", hard), func(t *testing.T) {
			rec := newRecorder(nil)
			ts := startServer(t, rec, parkConfig())
			const n = 20
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				conns[i] = dial(t, ts.URL, nil)
			}
			waitParked(t, ts, n)
			errc := make(chan error, 1)
			go func() {
				if hard {
					errc <- ts.Close()
					return
				}
				ctx, cancel := contextWithTimeout(5 * time.Second)
				defer cancel()
				errc <- ts.Shutdown(ctx)
			}()
			for _, ws := range conns {
				_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _, err := ws.ReadMessage() // gorilla answers the close frame
				var ce *websocket.CloseError
				switch {
				case !hard && (!errors.As(err, &ce) || ce.Code != 1001):
					t.Errorf("Shutdown: %v, want 1001", err)
				case hard && (err == nil || errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure):
					t.Errorf("Close sent a close frame: %v", err)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			want := wsgate.CloseGoingAway
			if hard {
				want = wsgate.CloseAbnormal
			}
			for range n {
				if _, ce := rec.nextClose(t, 5*time.Second); ce.Code != want {
					t.Errorf("OnClose %v, want %d", ce, want)
				}
			}
			if st := ts.Stats(); st.Parked != 0 || st.Connections != 0 {
				t.Fatalf("after the shutdown: %+v", st)
			}
		})
	}
}

// A message that trickles in is bounded by MessageTimeout from its first byte, even when it
// begins on a parked connection: 1008 "message timeout".
func TestParkedConnectionSlowMessage(t *testing.T) {
	rec := newRecorder(nil)
	ts := startServer(t, rec, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	waitParked(t, ts, 1)
	start := time.Now()
	rc.send(text("never finished").bytes()[:4])
	if got := rc.expectClose(); got.code != int(wsgate.ClosePolicyViolation) {
		t.Fatalf("close %v, want 1008", got)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("closed after %v, want about MessageTimeout (500ms)", took)
	}
	if _, ce := rec.nextClose(t, 10*time.Second); !errors.Is(ce, wsgate.ErrMessageTimeout) {
		t.Fatalf("OnClose %v, want the message timeout", ce)
	}
}

// permessage-deflate connections park and wake like the others.
func TestParkedCompressedConnection(t *testing.T) {
	cfg := parkConfig()
	cfg.Compression = true
	ts := startServer(t, echoDone, cfg)
	d := websocket.Dialer{EnableCompression: true}
	ws, resp, err := d.Dial(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatal("permessage-deflate not negotiated")
	}
	for i := range 5 {
		waitParked(t, ts, 1)
		msg := bytes.Repeat([]byte(fmt.Sprintf("compressible %d ", i)), 100) // over the 512-byte threshold
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || !bytes.Equal(got, append(msg, " done"...)) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// TLS connections never park (the record layer buffers what epoll has seen), and work as before;
// a plain connection to the same Server parks meanwhile.
func TestTLSConnectionsDoNotPark(t *testing.T) {
	cfg := parkConfig()
	cfg.Logger = discardLogger()
	srv, err := wsgate.NewServer(echoDone, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	plain, secure := httptest.NewServer(mux), httptest.NewTLSServer(mux)
	defer plain.Close()
	defer secure.Close()
	defer srv.Close()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	wss, _, err := d.Dial("wss"+strings.TrimPrefix(secure.URL, "https")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wss.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(plain.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for range 3 {
		waitFor(t, 10*time.Second, "the plain connection parked", func() bool { return srv.Stats().Parked == 1 })
		time.Sleep(150 * time.Millisecond) // three ticks more: the TLS one would have parked too
		if p := srv.Stats().Parked; p != 1 {
			t.Fatalf("Parked = %d, want 1: the TLS connection parked", p)
		}
		for _, c := range []*websocket.Conn{wss, ws} {
			if err := c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != "x done" {
				t.Fatalf("echo: %q %v", got, err)
			}
		}
	}
}

// A negative ParkAfter keeps a reader goroutine per connection.
func TestParkAfterNegativeKeepsReaders(t *testing.T) {
	cfg := parkConfig()
	cfg.ParkAfter = -1
	ts := startServer(t, echoDone, cfg)
	base := runtime.NumGoroutine()
	const n = 20
	for range n {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(text("x"))
		rc.expectEcho("x")
	}
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st := ts.Stats(); st.Parked != 0 {
			t.Fatalf("parked with ParkAfter < 0: %+v", st)
		}
		if g := runtime.NumGoroutine(); g < base+n {
			t.Fatalf("%d goroutines, want at least %d: readers gone", g, base+n)
		}
	}
}

// The default configuration parks too: ParkAfter 1 s, on a 1 s tick.
func TestDefaultParkAfterParks(t *testing.T) {
	ts := startServer(t, echoDone, nil)
	rc, _ := dialRaw(t, ts, nil)
	start := time.Now()
	waitParked(t, ts, 1)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("parked after %v, want within ParkAfter plus two ticks (3s)", took)
	}
	rc.write(text("after the park"))
	rc.expectEcho("after the park")
}

// Heartbeats are not activity: a parked connection that a pong or a ping wakes parks again at
// once, not ParkAfter later. With pings every 200 ms and ParkAfter 2 s, a connection kept awake
// by its pongs would never park again; here it is parked between them, and keeps its order.
func TestHeartbeatDoesNotKeepAConnectionAwake(t *testing.T) {
	cfg := &wsgate.Config{ParkAfter: 2 * time.Second, PingInterval: 200 * time.Millisecond, PongTimeout: time.Second}
	ts := startServer(t, echoDone, cfg)
	rc, _ := dialRaw(t, ts, nil)
	// next returns the next frame that is not the server's ping, answering those.
	next := func() frame {
		t.Helper()
		for {
			f, err := rc.readFrame()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if f.opcode != opPing {
				return f
			}
			rc.write(frame{fin: true, opcode: opPong, payload: f.payload})
		}
	}

	// Answer pings: the first pong parks the new connection (it has read no message), and each
	// next one wakes it and parks it again within a tick or two, far less than ParkAfter.
	for i := 0; ts.Stats().Wakeups < 5; i++ {
		if i == 50 {
			t.Fatalf("Wakeups = %d after 50 pings answered, want 5", ts.Stats().Wakeups)
		}
		f := rc.nextFrame(opPing)
		w := ts.Stats().Wakeups
		pongAt := time.Now()
		rc.write(frame{fin: true, opcode: opPong, payload: f.payload})
		waitFor(t, 10*time.Second, "parked after the pong", func() bool {
			return (i == 0 || ts.Stats().Wakeups > w) && ts.Stats().Parked == 1
		})
		if took := time.Since(pongAt); took > time.Second {
			t.Fatalf("parked again %v after a pong, want well within ParkAfter (%v)", took, cfg.ParkAfter)
		}
	}

	// A ping from the peer wakes it too: answered, with its payload, then parked again at once.
	w1 := ts.Stats().Wakeups
	start := time.Now()
	rc.write(frame{fin: true, opcode: opPing, payload: []byte("are you there")})
	if f := next(); f.opcode != opPong || string(f.payload) != "are you there" {
		t.Fatalf("got %v, want the pong of our ping", f)
	}
	waitFor(t, 10*time.Second, "parked again after the ping", func() bool {
		return ts.Stats().Wakeups > w1 && ts.Stats().Parked == 1
	})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("parked again %v after a ping, want well within ParkAfter", took)
	}

	// A message in the same read as a pong is answered, in order, and keeps the connection
	// awake: the park the pong asked for is withdrawn, and it parks only after ParkAfter.
	w2 := ts.Stats().Wakeups
	rc.write(frame{fin: true, opcode: opPong}, text("after the heartbeats"))
	if f := next(); f.opcode != opText || string(f.payload) != "after the heartbeats done" {
		t.Fatalf("got %v, want the echo", f)
	}
	time.Sleep(300 * time.Millisecond)
	if st := ts.Stats(); st.Wakeups <= w2 || st.Parked != 0 {
		t.Fatalf("after a pong and a message: Wakeups %d (was %d), Parked %d; want woken and still awake", st.Wakeups, w2, st.Parked)
	}
}

// A busy connection never parks: the server's clock is coarse (one tick), so a frame read just
// before a tick must not count as a tick of silence. A peer sending every 10 ms, with ParkAfter a
// single tick (50 ms), is never asked to park, and no reader of it is ever woken.
func TestBusyConnectionNeverParks(t *testing.T) {
	ts := startServer(t, echoDone, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	for i := range 100 {
		msg := fmt.Sprintf("busy %d", i)
		rc.write(text(msg))
		rc.expectEcho(msg)
		time.Sleep(10 * time.Millisecond)
	}
	if st := ts.Stats(); st.Wakeups != 0 || st.Parked != 0 {
		t.Fatalf("a connection that sent every 10 ms was parked: Wakeups %d, Parked %d", st.Wakeups, st.Parked)
	}
	waitParked(t, ts, 1) // and once silent, it parks
}
