package wsgate_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// concurrency is a handler that echoes "<msg> done" after holding the reader for hold, and
// records the most handlers that ran at once.
type concurrency struct {
	hold      time.Duration
	now, most atomic.Int64
}

func (h *concurrency) OnOpen(*wsgate.Conn)         {}
func (h *concurrency) OnClose(*wsgate.Conn, error) {}
func (h *concurrency) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	n := h.now.Add(1)
	for {
		old := h.most.Load()
		if n <= old || h.most.CompareAndSwap(old, n) {
			break
		}
	}
	time.Sleep(h.hold)
	h.now.Add(-1)
	_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
}

// parkedGorillas dials n gorilla/websocket clients, has each say hello, and waits until all have
// parked: from then on, every reader they get is a pooled one.
func parkedGorillas(t *testing.T, ts *testServer, n int) []*websocket.Conn {
	t.Helper()
	ws := make([]*websocket.Conn, n)
	for i := range ws {
		ws[i] = dial(t, ts.URL, nil)
		send(t, ws[i], "hello")
		expect(t, ws[i], "hello done")
	}
	waitParked(t, ts, int64(n))
	return ws
}

func send(t *testing.T, ws *websocket.Conn, s string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, ws *websocket.Conn, want string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := ws.ReadMessage()
	if err != nil || string(p) != want {
		t.Fatalf("read %q, %v; want %q", p, err, want)
	}
}

// TestReaderPoolBoundsReaders: 30 parked connections woken at once by three messages each get
// no more than MaxReaders (3) readers between them, in handlers at once; every message is
// answered, in order per connection, and the wake-ups that waited are counted.
func TestReaderPoolBoundsReaders(t *testing.T) {
	h := &concurrency{hold: 5 * time.Millisecond}
	cfg := parkConfig()
	cfg.MaxReaders = 3
	ts := startServer(t, h, cfg)
	const n = 30
	ws := parkedGorillas(t, ts, n)
	h.most.Store(0)
	for i, c := range ws {
		for k := range 3 {
			send(t, c, fmt.Sprintf("c%d m%d", i, k))
		}
	}
	for i, c := range ws {
		for k := range 3 {
			expect(t, c, fmt.Sprintf("c%d m%d done", i, k))
		}
	}
	if most := h.most.Load(); most > 3 || most < 2 {
		t.Errorf("%d handlers ran at once, want 2 or 3 (MaxReaders 3, 30 connections woken together)", most)
	}
	m := ts.Metrics()
	if m.WaitedForReader == 0 {
		t.Errorf("Metrics().WaitedForReader = 0: no wake-up waited, with 30 connections and 3 readers")
	}
	waitParked(t, ts, n)
	if w := ts.Metrics().WaitingForReader; w != 0 {
		t.Errorf("WaitingForReader = %d with every connection parked, want 0", w)
	}
}

// TestReaderPoolWithoutBound: MaxReaders -1 gives every woken connection a reader of its own, so
// handlers that wait for each other all run (with a bound of 1 this would never end: the
// documented caveat), and nothing waits.
func TestReaderPoolWithoutBound(t *testing.T) {
	const n = 8
	var arrived sync.WaitGroup
	arrived.Add(n)
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		arrived.Done()
		arrived.Wait() // every handler waits for all the others
		_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
	})
	cfg := parkConfig()
	cfg.MaxReaders = -1
	ts := startServer(t, h, cfg)
	ws := make([]*websocket.Conn, n)
	for i := range ws {
		ws[i] = dial(t, ts.URL, nil)
	}
	waitParked(t, ts, n)
	for i, c := range ws {
		send(t, c, fmt.Sprintf("c%d", i))
	}
	for i, c := range ws {
		expect(t, c, fmt.Sprintf("c%d done", i))
	}
	if m := ts.Metrics(); m.WaitedForReader != 0 {
		t.Errorf("WaitedForReader = %d without a bound, want 0", m.WaitedForReader)
	}
}

// TestReaderPoolGoesRound: with one reader and a connection that never falls silent, another
// woken connection is still answered while the first talks on: the reader parks the talker after
// each message while someone waits, instead of after ParkAfter of silence.
func TestReaderPoolGoesRound(t *testing.T) {
	h := &concurrency{}
	cfg := parkConfig()
	cfg.MaxReaders = 1
	ts := startServer(t, h, cfg)
	ws := parkedGorillas(t, ts, 2)
	talker, quiet := ws[0], ws[1]
	stop := make(chan struct{})
	var talked sync.WaitGroup
	talked.Add(1)
	go func() { // owner: the test; ends on stop
		defer talked.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if talker.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("t%d", k))) != nil {
				return
			}
			if _, _, err := talker.ReadMessage(); err != nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // the talker holds the one reader now
	start := time.Now()
	send(t, quiet, "me too")
	expect(t, quiet, "me too done")
	waited := time.Since(start)
	close(stop)
	talked.Wait()
	// Without going round, the answer waits until the talker stops (never, here: expect's 10 s).
	if waited > time.Second {
		t.Errorf("the quiet connection waited %v behind a talker for its answer", waited)
	}
	if m := ts.Metrics(); m.WaitedForReader == 0 {
		t.Errorf("WaitedForReader = 0: the quiet connection should have waited for the one reader")
	}
}

// TestReaderPoolQueuedConnectionsEnd: connections waiting for a reader when the server closes
// them, or when their peer goes away, end like any other, leaving no goroutine (TestMain's
// goleak) and nothing waiting.
func TestReaderPoolQueuedConnectionsEnd(t *testing.T) {
	release := make(chan struct{})
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		if string(m.Data) == "block" {
			<-release
		}
	})
	cfg := parkConfig()
	cfg.MaxReaders = 1
	ts := startServer(t, h, cfg)
	ws := make([]*websocket.Conn, 6)
	for i := range ws {
		ws[i] = dial(t, ts.URL, nil)
	}
	waitParked(t, ts, int64(len(ws)))
	send(t, ws[0], "block") // the one reader is held
	waitFor(t, 5*time.Second, "the blocker woken", func() bool { return ts.Metrics().Wakeups >= 1 })
	for _, c := range ws[1:4] {
		send(t, c, "queued")
	}
	for _, c := range ws[4:] {
		c.Close() // the peer goes away while others hold the reader
	}
	waitFor(t, 5*time.Second, "five connections waiting for the reader", func() bool { return ts.Metrics().WaitingForReader == 5 })
	close(release)
	ts.Close()
	waitFor(t, 5*time.Second, "every connection ended", func() bool { return ts.Metrics().Connections == 0 })
	if m := ts.Metrics(); m.WaitingForReader != 0 || m.WaitedForReader < 5 {
		t.Errorf("WaitingForReader = %d, WaitedForReader = %d; want 0 and at least 5", m.WaitingForReader, m.WaitedForReader)
	}
}

// TestReaderPoolSparesAQueuedPong: a parked connection that answers its ping at once, but waits
// for the one reader (held by another connection's handler) past its pong's deadline, is not
// ended as a pong timeout: the time in the queue was the server's. It still answers afterwards.
func TestReaderPoolSparesAQueuedPong(t *testing.T) {
	release := make(chan struct{})
	var ended atomic.Pointer[wsgate.Conn]
	h := &onClose{
		Handler: wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
			if string(m.Data) == "block" {
				<-release
				return
			}
			_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
		}),
		closed: func(c *wsgate.Conn, err error) {
			if errors.Is(err, wsgate.ErrPongTimeout) {
				ended.Store(c)
			}
		},
	}
	cfg := parkConfig()
	cfg.MaxReaders = 1
	cfg.PingInterval, cfg.PongTimeout = 300*time.Millisecond, 300*time.Millisecond
	cfg.MessageTimeout = 5 * time.Second
	ts := startServer(t, h, cfg)
	holder := dial(t, ts.URL, nil)
	victim := dial(t, ts.URL, nil)
	answered := make(chan string, 1)
	go func() { // owner: the test; gorilla answers pings while it reads; ends with the connection
		for {
			_, p, err := victim.ReadMessage()
			if err != nil {
				close(answered)
				return
			}
			answered <- string(p)
		}
	}()
	waitParked(t, ts, 2)
	send(t, holder, "block") // the one pooled reader is held
	waitFor(t, 5*time.Second, "the victim pinged, answering, and waiting for the reader", func() bool {
		return ts.Metrics().WaitingForReader >= 1
	})
	time.Sleep(600 * time.Millisecond) // past the victim's pong deadline, in the queue
	close(release)
	if err := victim.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	select {
	case p, ok := <-answered:
		if !ok || p != "still here done" {
			t.Fatalf("the victim's answer: %q (open %v)", p, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer for the victim")
	}
	if c := ended.Load(); c != nil {
		t.Fatalf("connection %d ended as a pong timeout", c.ID())
	}
}

// onClose is a Handler with its own OnClose.
type onClose struct {
	wsgate.Handler
	closed func(*wsgate.Conn, error)
}

func (h *onClose) OnClose(c *wsgate.Conn, err error) { h.closed(c, err) }
