package wsgate_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// recorder is a Handler that records what happens to every connection.
type recorder struct {
	onMessage func(c *wsgate.Conn, m wsgate.Message)
	mu        sync.Mutex
	opened    map[uint64]time.Time
	closed    map[uint64]error
	closedAt  map[uint64]time.Time
	events    map[uint64][]string
	inFlight  map[uint64]*atomic.Int32
	overlap   atomic.Bool
	closes    chan uint64
}

func newRecorder(f func(c *wsgate.Conn, m wsgate.Message)) *recorder {
	return &recorder{onMessage: f, opened: map[uint64]time.Time{}, closed: map[uint64]error{},
		closedAt: map[uint64]time.Time{}, events: map[uint64][]string{}, inFlight: map[uint64]*atomic.Int32{},
		closes: make(chan uint64, 1024)}
}

func (r *recorder) OnOpen(c *wsgate.Conn) {
	r.mu.Lock()
	r.opened[c.ID()] = time.Now()
	r.events[c.ID()] = append(r.events[c.ID()], "open")
	r.inFlight[c.ID()] = new(atomic.Int32)
	r.mu.Unlock()
}

func (r *recorder) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	r.mu.Lock()
	r.events[c.ID()] = append(r.events[c.ID()], "message")
	n := r.inFlight[c.ID()]
	r.mu.Unlock()
	if n.Add(1) != 1 {
		r.overlap.Store(true)
	}
	defer n.Add(-1)
	if r.onMessage != nil {
		r.onMessage(c, m)
	}
}

func (r *recorder) OnClose(c *wsgate.Conn, err error) {
	r.mu.Lock()
	if _, dup := r.closed[c.ID()]; dup {
		r.events[c.ID()] = append(r.events[c.ID()], "DUPLICATE close")
	}
	r.closed[c.ID()] = err
	r.closedAt[c.ID()] = time.Now()
	r.events[c.ID()] = append(r.events[c.ID()], "close")
	r.mu.Unlock()
	r.closes <- c.ID()
}

// nextClose waits for the next OnClose and returns the connection's close error.
func (r *recorder) nextClose(t *testing.T, d time.Duration) (uint64, *wsgate.CloseError) {
	t.Helper()
	select {
	case id := <-r.closes:
		r.mu.Lock()
		err := r.closed[id]
		r.mu.Unlock()
		var ce *wsgate.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("OnClose got %T %v, want *CloseError", err, err)
		}
		return id, ce
	case <-time.After(d):
		t.Fatalf("no OnClose within %v", d)
	}
	return 0, nil
}

func readClose(t *testing.T, ws *websocket.Conn) *websocket.CloseError {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want a close frame, got %v", err)
		}
		return ce
	}
}

func echoOnce(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, got, err := ws.ReadMessage()
	if err != nil || string(got) != msg+" done" {
		t.Fatalf("echo %q: got %q, %v", msg, got, err)
	}
}

func TestHandlerOrderAndCloseReasons(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) { echoDone(c, m) })
	ts := startServer(t, rec, nil)
	ws := dial(t, ts.URL, nil)
	for i := range 50 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "client done"))
	if ce := readClose(t, ws); ce.Code != 4001 {
		t.Fatalf("server answered close with %d, want the peer's 4001 echoed", ce.Code)
	}
	id, ce := rec.nextClose(t, 5*time.Second)
	if ce.Code != 4001 || ce.Reason != "client done" || !ce.Remote {
		t.Fatalf("OnClose: %+v, want remote 4001 \"client done\"", ce)
	}
	rec.mu.Lock()
	ev := rec.events[id]
	rec.mu.Unlock()
	if len(ev) != 52 || ev[0] != "open" || ev[51] != "close" {
		t.Fatalf("events: %v", ev)
	}
	if rec.overlap.Load() {
		t.Fatal("OnMessage ran concurrently for one connection")
	}
}

func TestServerClose(t *testing.T) {
	var target atomic.Pointer[wsgate.Conn]
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		target.Store(c)
		// A big message then Close at once: the message is written in full before the close frame.
		big := make([]byte, 4<<20)
		for i := range big {
			big[i] = byte(i)
		}
		if err := c.Send(wsgate.Binary, big); err != nil {
			panic(err)
		}
		if err := c.Close(wsgate.CloseNormal, "done here"); err != nil {
			panic(err)
		}
		if err := c.Send(wsgate.Text, []byte("late")); !errors.Is(err, wsgate.ErrClosed) {
			panic(fmt.Sprintf("Send after Close: %v", err))
		}
	})
	ts := startServer(t, rec, &wsgate.Config{SendQueueBytes: 8 << 20})
	ws := dial(t, ts.URL, nil)
	ws.SetReadLimit(16 << 20)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := ws.ReadMessage()
	if err != nil || len(got) != 4<<20 || got[len(got)-1] != byte(len(got)-1) {
		t.Fatalf("big message: len %d, err %v", len(got), err)
	}
	if ce := readClose(t, ws); ce.Code != 1000 || ce.Text != "done here" {
		t.Fatalf("close: %+v", ce)
	}
	// gorilla answers the close frame; the server then ends the connection.
	_, ce := rec.nextClose(t, 5*time.Second)
	if ce.Code != 1000 || ce.Remote || ce.Err != nil {
		t.Fatalf("OnClose: %+v (err %v)", ce, ce.Err)
	}
	if err := target.Load().Close(wsgate.CloseNormal, ""); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseTimeoutWhenPeerNeverAnswers(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) { c.Close(wsgate.CloseNormal, "bye") })
	ts := startServer(t, rec, &wsgate.Config{CloseTimeout: 200 * time.Millisecond})
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("x"))
	start := time.Now()
	// Never read: gorilla only answers a close frame from ReadMessage.
	_, ce := rec.nextClose(t, 5*time.Second)
	if !errors.Is(ce, wsgate.ErrCloseTimeout) || ce.Code != 1000 {
		t.Fatalf("OnClose: %+v", ce)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %v, want about CloseTimeout", d)
	}
}

func TestAbruptDisconnectsAndCycles(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) { echoDone(c, m) })
	ts := startServer(t, rec, nil)

	// A long-lived client keeps talking while others come and go.
	steady := dial(t, ts.URL, nil)
	stop := make(chan struct{})
	steadyErr := make(chan error, 1)
	var steadyCount atomic.Int64
	go func() {
		defer close(steadyErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := "steady " + strconv.Itoa(i)
			if err := steady.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				steadyErr <- err
				return
			}
			steady.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, got, err := steady.ReadMessage()
			if err != nil || string(got) != msg+" done" {
				steadyErr <- fmt.Errorf("steady echo %q: %q %v", msg, got, err)
				return
			}
			steadyCount.Add(1)
		}
	}()

	base := runtime.NumGoroutine()
	for i := range 200 {
		ws, _, err := websocket.DefaultDialer.Dial(ts.URL, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		switch i % 4 {
		case 0: // clean close
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
			readClose(t, ws)
		case 1: // abrupt: TCP closed without a close frame
		case 2: // abrupt in the middle of a message frame
			nc := ws.NetConn()
			nc.Write([]byte{0x81, 0xFE, 0x10, 0x00, 1, 2, 3, 4, 'h', 'a'})
		case 3: // abrupt while the server is writing to us
			ws.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("z", 60000)))
		}
		ws.Close()
	}
	waitFor(t, 10*time.Second, "all cycled connections to end", func() bool { return ts.Stats().Connections == 1 })
	waitFor(t, 10*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base+1 })
	close(stop)
	if err := <-steadyErr; err != nil {
		t.Fatal(err)
	}
	if steadyCount.Load() == 0 {
		t.Fatal("the steady client got no echo")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	abnormal := 0
	for id, err := range rec.closed {
		if ev := rec.events[id]; ev[len(ev)-1] != "close" || strings.Contains(strings.Join(ev, ","), "DUPLICATE") {
			t.Fatalf("conn %d events %v", id, ev)
		}
		if wsgate.CloseStatus(err) == wsgate.CloseAbnormal {
			abnormal++
		}
	}
	if len(rec.closed) != 200 || abnormal < 100 {
		t.Fatalf("%d closes (%d abnormal), want 200 (≥100 abnormal)", len(rec.closed), abnormal)
	}
}

func TestConcurrentSend(t *testing.T) {
	const senders, each = 16, 500
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		var wg sync.WaitGroup
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if err := c.Send(wsgate.Text, []byte(fmt.Sprintf("%d:%d", g, i))); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
	})
	ts := startServer(t, rec, &wsgate.Config{SendQueueMessages: senders * each})
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	next := make([]int, senders)
	for range senders * each {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var g, i int
		if _, err := fmt.Sscanf(string(got), "%d:%d", &g, &i); err != nil {
			t.Fatalf("corrupt message %q", got)
		}
		if next[g] != i {
			t.Fatalf("sender %d: got %d, want %d (lost or reordered)", g, i, next[g])
		}
		next[g]++
	}
}

func TestSlowConsumerIsClosedOthersFlow(t *testing.T) {
	chunk := make([]byte, 32<<10)
	var maxQueued atomic.Int64
	var flooded = make(chan error, 1)
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		if string(m.Data) != "flood" {
			echoDone(c, m)
			return
		}
		for i := 0; i < 100000; i++ { // ~3 GB if nothing stopped it
			err := c.Send(wsgate.Binary, chunk)
			if q := int64(c.Stats().Queued); q > maxQueued.Load() {
				maxQueued.Store(q)
			}
			if err != nil {
				flooded <- err
				return
			}
		}
		flooded <- nil
	})
	ts := startServer(t, rec, &wsgate.Config{WriteTimeout: 500 * time.Millisecond, CloseTimeout: 500 * time.Millisecond})
	slow := dial(t, ts.URL, nil)
	fast := dial(t, ts.URL, nil)
	slow.WriteMessage(websocket.TextMessage, []byte("flood")) // and never read
	select {
	case err := <-flooded:
		if !errors.Is(err, wsgate.ErrQueueFull) {
			t.Fatalf("flooding Send ended with %v, want ErrQueueFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send never reported a full queue")
	}
	if q := maxQueued.Load(); q > wsgate.DefaultSendQueueBytes {
		t.Fatalf("queue held %d bytes, bound is %d", q, wsgate.DefaultSendQueueBytes)
	}
	for i := range 20 {
		echoOnce(t, fast, "fast "+strconv.Itoa(i))
	}
	_, ce := rec.nextClose(t, 5*time.Second)
	if ce.Code != wsgate.CloseTryAgainLater || ce.Reason != "slow consumer" || !errors.Is(ce, wsgate.ErrSlowConsumer) {
		t.Fatalf("slow consumer closed with %+v, want 1013 \"slow consumer\"", ce)
	}
	if !ce.Code.Reconnectable() {
		t.Fatalf("the slow-consumer close %d is terminal: a client that fell behind could never recover", ce.Code)
	}
	echoOnce(t, fast, "still here")
}

func TestDropPolicies(t *testing.T) {
	for _, policy := range []wsgate.SlowConsumerPolicy{wsgate.PolicyDropNewest, wsgate.PolicyDropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			results := make(chan []error, 1)
			rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
				var errs []error
				for i := range 5000 {
					errs = append(errs, c.Send(wsgate.Text, []byte(strconv.Itoa(i))))
				}
				results <- errs
			})
			ts := startServer(t, rec, &wsgate.Config{SlowConsumer: policy, SendQueueMessages: 4})
			ws := dial(t, ts.URL, nil)
			ws.WriteMessage(websocket.TextMessage, []byte("go"))
			errs := <-results
			full := 0
			for _, err := range errs {
				if errors.Is(err, wsgate.ErrQueueFull) {
					full++
				} else if err != nil {
					t.Fatalf("unexpected Send error %v", err)
				}
			}
			var got []int
			for {
				ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, p, err := ws.ReadMessage()
				if err != nil {
					break
				}
				n, _ := strconv.Atoi(string(p))
				got = append(got, n)
			}
			dropped := 0
			ts.Range(func(c *wsgate.Conn) bool { dropped = int(c.Stats().Dropped); return true })
			if len(got)+dropped != 5000 {
				t.Fatalf("received %d + dropped %d != 5000 sent", len(got), dropped)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("out of order: %v", got)
				}
			}
			switch policy {
			case wsgate.PolicyDropNewest:
				if full != dropped || full == 0 {
					t.Fatalf("ErrQueueFull %d times, dropped %d", full, dropped)
				}
			case wsgate.PolicyDropOldest:
				if full != 0 || got[len(got)-1] != 4999 || dropped == 0 {
					t.Fatalf("drop-oldest: %d errors, last %d, dropped %d", full, got[len(got)-1], dropped)
				}
			}
		})
	}
}

func TestDeadPeerClosedWithinBound(t *testing.T) {
	const ping, pong = 300 * time.Millisecond, 200 * time.Millisecond
	rec := newRecorder(nil)
	ts := startServer(t, rec, &wsgate.Config{PingInterval: ping, PongTimeout: pong})

	// A live client that answers pings (gorilla does, from ReadMessage) stays for several rounds.
	live := dial(t, ts.URL, nil)
	liveDone := make(chan error, 1)
	go func() {
		_, _, err := live.ReadMessage()
		liveDone <- err
	}()

	// A dead one: TCP open, but it never reads, so it never answers.
	dead := dial(t, ts.URL, nil)
	opened := time.Now()
	_, ce := rec.nextClose(t, 5*time.Second)
	elapsed := time.Since(opened)
	if !errors.Is(ce, wsgate.ErrPongTimeout) {
		t.Fatalf("dead peer closed with %+v, want ErrPongTimeout", ce)
	}
	// The bound, plus scheduling slack for a loaded 2-core machine under -race.
	if elapsed > ping+pong+150*time.Millisecond || elapsed < ping/2 {
		t.Fatalf("dead peer closed after %v, want within %v", elapsed, ping+pong)
	}
	_ = dead
	time.Sleep(2 * (ping + pong)) // several heartbeat rounds for the live client
	select {
	case err := <-liveDone:
		t.Fatalf("live client disconnected: %v", err)
	default:
	}
	if n := ts.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want the live one", n)
	}
}

func TestPingAnsweredWithPayload(t *testing.T) {
	ts := startServer(t, echoDone, nil)
	ws := dial(t, ts.URL, nil)
	got := make(chan string, 1)
	ws.SetPongHandler(func(p string) error { got <- p; return nil })
	ws.WriteControl(websocket.PingMessage, []byte("are you there?"), time.Now().Add(time.Second))
	ws.WriteMessage(websocket.TextMessage, []byte("x"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "are you there?" {
			t.Fatalf("pong payload %q", p)
		}
	case <-time.After(time.Second):
		t.Fatal("no pong")
	}
}

func TestHandlerPanicIsContained(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		if string(m.Data) == "panic" {
			panic("boom")
		}
		echoDone(c, m)
	})
	ts := startServer(t, rec, nil)
	other := dial(t, ts.URL, nil)
	bad := dial(t, ts.URL, nil)
	bad.WriteMessage(websocket.TextMessage, []byte("panic"))
	if ce := readClose(t, bad); ce.Code != 1011 {
		t.Fatalf("panicking handler: close %d, want 1011", ce.Code)
	}
	_, ce := rec.nextClose(t, 5*time.Second)
	if ce.Code != 1011 || !errors.Is(ce, wsgate.ErrHandlerPanic) {
		t.Fatalf("OnClose %+v", ce)
	}
	echoOnce(t, other, "alive")
	if ts.Stats().Panics != 1 {
		t.Fatalf("panics = %d", ts.Stats().Panics)
	}
}

func TestShutdownFlushesThenGoingAway(t *testing.T) {
	queued := make(chan struct{})
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		for i := range 200 {
			c.Send(wsgate.Text, []byte("m"+strconv.Itoa(i)))
		}
		close(queued)
	})
	ts := startServer(t, rec, nil)
	ws := dial(t, ts.URL, nil)
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	<-queued
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(t.Context()) }()
	for i := range 200 {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := ws.ReadMessage()
		if err != nil || string(p) != "m"+strconv.Itoa(i) {
			t.Fatalf("message %d: %q %v", i, p, err)
		}
	}
	if ce := readClose(t, ws); ce.Code != 1001 {
		t.Fatalf("close %d, want 1001", ce.Code)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// New upgrades are refused once shut down.
	if _, resp, err := websocket.DefaultDialer.Dial(ts.URL, nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after shutdown: %v %v", resp, err)
	}
}

func TestShutdownForcesAtDeadline(t *testing.T) {
	rec := newRecorder(nil)
	ts := startServer(t, rec, &wsgate.Config{CloseTimeout: time.Minute})
	ws := dial(t, ts.URL, nil) // never reads, so never answers the close frame
	_ = ws
	waitFor(t, 5*time.Second, "the connection to register", func() bool { return ts.Stats().Connections == 1 })
	ctx, cancel := contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil though the peer never answered")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	waitFor(t, 5*time.Second, "forced close", func() bool { return ts.Stats().Connections == 0 })
}

// TestPipeliningClientThatNeverReads: replies written by the reader itself must not block it on a
// peer that does not read; the peer falls under the slow-consumer policy instead.
func TestPipeliningClientThatNeverReads(t *testing.T) {
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) { echoDone(c, m) })
	ts := startServer(t, rec, &wsgate.Config{CloseTimeout: 300 * time.Millisecond, WriteTimeout: 2 * time.Second})
	other := dial(t, ts.URL, nil)
	ws := dial(t, ts.URL, nil)
	msg := make([]byte, 4<<10)
	for i := range msg {
		msg[i] = 'a'
	}
	sent := make(chan error, 1)
	go func() {
		for range 20000 { // 80 MB of echoes if the server kept reading and writing forever
			ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	_, ce := rec.nextClose(t, 10*time.Second)
	if ce.Code != wsgate.CloseTryAgainLater || !errors.Is(ce, wsgate.ErrSlowConsumer) {
		t.Fatalf("non-reading client closed with %+v, want 1013 slow consumer", ce)
	}
	echoOnce(t, other, "unaffected")
	ws.Close()
	<-sent
}

// TestOversizedMessageCloseIsSeen: after the 1009 close frame the server drains what the peer is
// still sending instead of resetting the connection, so the peer reads the 1009 rather than 1006.
func TestOversizedMessageCloseIsSeen(t *testing.T) {
	ts := startServer(t, echoDone, &wsgate.Config{ReadLimit: 1024})
	big := make([]byte, 3<<20)
	for i := range 10 {
		ws := dial(t, ts.URL, nil)
		ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := ws.WriteMessage(websocket.BinaryMessage, big); err != nil {
			t.Fatalf("trial %d: writing the oversized message: %v", i, err)
		}
		if ce := readClose(t, ws); ce.Code != 1009 {
			t.Fatalf("trial %d: close %d, want 1009", i, ce.Code)
		}
		ws.Close()
	}
}

// TestSlowHandlerIsNotADeadPeer: while a handler blocks, the connection reads nothing; the
// heartbeat must not take that silence for a dead peer.
func TestSlowHandlerIsNotADeadPeer(t *testing.T) {
	const ping, pong = 100 * time.Millisecond, 100 * time.Millisecond
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		time.Sleep(4 * (ping + pong))
		echoDone(c, m)
	})
	ts := startServer(t, rec, &wsgate.Config{PingInterval: ping, PongTimeout: pong})
	ws := dial(t, ts.URL, nil)
	echoOnce(t, ws, "slow")
	echoOnce(t, ws, "still alive")
	select {
	case id := <-rec.closes:
		rec.mu.Lock()
		defer rec.mu.Unlock()
		t.Fatalf("connection %d closed: %v", id, rec.closed[id])
	default:
	}
}

// A write deadline, once passed, fails every later write on the socket until another is set. The
// writer goroutine arms one when a write has to wait (here: a large Send the client reads only
// after the socket filled up); a reply written by the reader long after that deadline passed
// must still go out.
//
// The client has to read the rest of the large message within the write timeout, or the server
// rightly drops it: on a loaded machine that may take longer than the short timeout the test
// prefers, so a trial that times out that way is run again with twice the timeout. Every trial
// checks the same thing.
func TestReplyAfterAnExpiredWriteDeadline(t *testing.T) {
	for wt := 300 * time.Millisecond; ; wt *= 2 {
		if replyAfterAnExpiredWriteDeadline(t, wt) {
			return
		}
		if wt > 5*time.Second {
			t.Fatalf("the client could not read 8 MiB within a write timeout of %v", wt)
		}
		t.Logf("the client read too slowly for a write timeout of %v; again with %v", wt, 2*wt)
	}
}

// replyAfterAnExpiredWriteDeadline is one trial with write timeout wt; false means the client
// read the large message too slowly for wt, which says nothing about the reply.
func replyAfterAnExpiredWriteDeadline(t *testing.T, wt time.Duration) bool {
	ts := startServer(t, echoDone, &wsgate.Config{WriteTimeout: wt, SendQueueBytes: 64 << 20})
	ws := dial(t, ts.URL, nil)
	echoOnce(t, ws, "before")
	c := onlyConn(t, ts)
	big := payloadFor(7, 8<<20) // more than the socket buffers hold while the client does not read
	if err := c.Send(wsgate.Binary, big); err != nil {
		t.Fatal(err)
	}
	// The writer arms its deadline just before the write that waits: once the client's receive
	// buffer stops filling, that write is waiting, and the deadline armed.
	var armed time.Time
	for last := -2; ; {
		time.Sleep(20 * time.Millisecond)
		n := unread(ws.NetConn())
		if n < 0 { // cannot tell: give the writer time
			time.Sleep(wt / 6)
			armed = time.Now()
			break
		}
		if n > 0 && n == last {
			armed = time.Now()
			break
		}
		last = n
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := ws.ReadMessage()
	if err != nil {
		return false // the write timed out before the client had read it all
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("big message: %d bytes, corrupt", len(got))
	}
	time.Sleep(time.Until(armed.Add(wt + wt/2))) // the armed deadline passes, long after its write completed
	for i := range 3 {
		echoOnce(t, ws, fmt.Sprint("after ", i))
	}
	return true
}

// Config.WriteTimeout: a peer that stops reading while its queue stays within bounds is closed
// once a write has waited WriteTimeout, whichever goroutine writes (the reader replying inline, or
// the writer goroutine for Sends from elsewhere).
func TestWriteTimeoutClosesAPeerThatStopsReading(t *testing.T) {
	const wt = 200 * time.Millisecond
	big := make([]byte, 4<<20)
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprint("inline=", inline), func(t *testing.T) {
			rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
				for range 8 { // 32 MiB: far more than the socket buffers hold
					if err := c.Send(wsgate.Binary, big); errors.Is(err, wsgate.ErrClosed) {
						return // the timeout may come before the last Send
					} else if err != nil {
						t.Errorf("Send: %v", err)
					}
				}
			})
			ts := startServer(t, rec, &wsgate.Config{WriteTimeout: wt, SendQueueBytes: 64 << 20})
			ws := dial(t, ts.URL, nil) // never reads
			start := time.Now()
			if inline {
				if err := ws.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
					t.Fatal(err)
				}
			} else {
				// OnOpen, not only registered: the recorder's OnMessage needs what OnOpen records.
				waitFor(t, 5*time.Second, "the connection's OnOpen", func() bool {
					rec.mu.Lock()
					defer rec.mu.Unlock()
					return len(rec.opened) == 1
				})
				ts.Range(func(c *wsgate.Conn) bool { rec.OnMessage(c, wsgate.Message{}); return true })
			}
			_, ce := rec.nextClose(t, 10*time.Second)
			took := time.Since(start)
			if ce.Code != wsgate.CloseAbnormal || !errors.Is(ce, wsgate.ErrWriteTimeout) {
				t.Fatalf("closed with %+v, want 1006 and ErrWriteTimeout", ce)
			}
			if took < wt || took > wt+3*time.Second {
				t.Fatalf("closed after %v, want about %v", took, wt)
			}
		})
	}
}

// Simultaneous close while our close frame still waits behind a large reply: the peer's close
// frame arrives, the transport ends the connection, and our side must not be shut (FIN) before
// the reply and our close frame are written in full.
func TestSimultaneousCloseBehindALargeReply(t *testing.T) {
	big := payloadFor(3, 32<<20)
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		if err := c.Send(wsgate.Binary, big); err != nil {
			t.Errorf("Send: %v", err)
		}
		_ = c.Close(4000, "after the big one")
	})
	ts := startServer(t, h, &wsgate.Config{SendQueueBytes: 64 << 20})
	ws := dial(t, ts.URL, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "me too"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server's reply fills the socket; its reader sees our close
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := ws.ReadMessage()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("reply: %d of %d bytes, %v", len(got), len(big), err)
	}
	ce := readClose(t, ws)
	if ce.Code != 4000 || ce.Text != "after the big one" {
		t.Fatalf("close frame %v, want 4000", ce)
	}
}

// A panic inside the transport's read loop (simulated by a hook in its read path: the one known
// panic of gws is patched in internal/gws; this is the second line of defence for an unknown one)
// ends that connection with 1011, OnClose runs once, and the server serves on.
func TestTransportPanicIsContained(t *testing.T) {
	wsgate.SetTestHookRead(func(c *wsgate.Conn) {
		if c.Data() == "boom" {
			panic("transport exploded")
		}
	})
	t.Cleanup(func() { wsgate.SetTestHookRead(nil) }) // after the server's cleanup: it waits for its readers
	rec := newRecorder(echoDone.OnMessage)
	ts := startServer(t, rec, nil)
	ws := dial(t, ts.URL, nil)
	echoOnce(t, ws, "before")
	ts.Range(func(c *wsgate.Conn) bool { c.SetData("boom"); return true })
	if err := ws.WriteMessage(websocket.TextMessage, []byte("trigger")); err != nil {
		t.Fatal(err)
	}
	// The reader is parked in a read begun before SetData; the message ends it, and the next
	// read panics.
	if ce := readClose(t, ws); ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("peer got %v, want 1011", ce)
	}
	_, ce := rec.nextClose(t, 5*time.Second)
	if ce.Code != wsgate.CloseInternalError || ce.Err == nil || !strings.Contains(ce.Err.Error(), "transport exploded") {
		t.Fatalf("OnClose got %+v, want 1011 naming the panic", ce)
	}
	if n := ts.Stats().Panics; n != 1 {
		t.Fatalf("Stats().Panics = %d, want 1", n)
	}
	ws2 := dial(t, ts.URL, nil)
	echoOnce(t, ws2, "after")
	select {
	case id := <-rec.closes:
		t.Fatalf("a second OnClose, for connection %d", id)
	case <-time.After(100 * time.Millisecond):
	}
}

// A burst as large as a recovery page of the hub (1000 publications), queued at once, fits the
// default send queue: a healthy reader is not cut as a slow consumer before it had a chance to read.
func TestBurstOfARecoveryPageFitsTheDefaultQueue(t *testing.T) {
	const burst = 1000
	errs := make(chan error, 1)
	rec := newRecorder(func(c *wsgate.Conn, m wsgate.Message) {
		msg := bytes.Repeat([]byte("p"), 100)
		for range burst { // all queued before the first is written: Sends in a handler are deferred
			if err := c.Send(wsgate.Text, msg); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	})
	ts := startServer(t, rec, nil)
	ws := dial(t, ts.URL, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("burst")); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("Send during a burst of %d: %v", burst, err)
	}
	for i := range burst {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatalf("message %d of %d: %v", i, burst, err)
		}
	}
}

// inHandler is set by the reader without the connection's lock (Sends read it under the lock).
// Refuted as a bug: a Send from another goroutine racing the reader into or out of a handler is
// written either by a writer goroutine (it saw no handler) or by the reader when the handler
// returns (it saw one, under the lock the reader takes to clear it), never left in the queue.
// Each round's handler starts a goroutine that Sends as the handler returns; the reply and that
// message must both arrive without any further traffic to flush them.
func TestSendRacingAHandlerIsNeverLeftQueued(t *testing.T) {
	var wg sync.WaitGroup
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		wg.Add(1)
		go func() { // owner: the test, which waits for it
			defer wg.Done()
			for range len(m.Data) % 8 { // vary when it lands: around the end of the handler
				runtime.Gosched()
			}
			_ = c.Send(wsgate.Text, []byte("outside"))
		}()
		echoDone(c, m)
	})
	ts := startServer(t, h, nil)
	t.Cleanup(wg.Wait)
	ws := dial(t, ts.URL, nil)
	for i := range 2000 {
		if err := ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("r"), i%8+1)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < 2 {
			ws.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, p, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("round %d: got %q, then %v: a message was left in the queue", i, got, err)
			}
			got = append(got, string(p))
		}
	}
}
