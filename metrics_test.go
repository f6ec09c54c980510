package wsgate_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wsgate/wsgate"
)

func closedIndex(code wsgate.CloseCode) int {
	for i, c := range wsgate.MetricsCloseCodes {
		if c == code {
			return i
		}
	}
	return len(wsgate.MetricsCloseCodes)
}

func handshakeIndex(status int) int {
	for i, s := range wsgate.MetricsHandshakeStatuses {
		if s == status {
			return i
		}
	}
	return len(wsgate.MetricsHandshakeStatuses)
}

// TestMetricsCountRealTraffic drives a server with gorilla/websocket and checks that every counter
// the traffic touches moved by exactly what was sent, and nothing else.
func TestMetricsCountRealTraffic(t *testing.T) {
	ts := startServer(t, echoDone, &wsgate.Config{MaxConnectionsPerIP: 2})
	if m := ts.Metrics(); m != (wsgate.Metrics{}) {
		t.Fatalf("a new server's metrics are %+v, want all zero", m)
	}
	a := dial(t, ts.URL, nil)
	b := dial(t, ts.URL, nil)
	// A third from the same address is refused 429, a plain GET 400, a foreign origin 403.
	if _, resp, err := websocket.DefaultDialer.Dial(ts.URL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v, want 429", resp, err)
	}
	resp, err := http.Get(strings.Replace(ts.URL, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET answered %d, want 400", resp.StatusCode)
	}
	for i := 0; i < 3; i++ {
		if err := a.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	// A message counts as sent once its write returned, which may be just after the client read it.
	waitFor(t, 5*time.Second, "the replies counted", func() bool {
		m := ts.Metrics()
		return m.MessagesSentText == 3 && m.MessagesSentBinary == 1
	})
	m := ts.Metrics()
	if m.Connections != 2 || m.Opened != 2 {
		t.Fatalf("connections %d opened %d, want 2 and 2", m.Connections, m.Opened)
	}
	if m.MessagesReceivedText != 3 || m.MessagesReceivedBinary != 1 || m.MessagesSentText != 3 || m.MessagesSentBinary != 1 {
		t.Fatalf("messages in %d/%d out %d/%d, want 3/1 and 3/1", m.MessagesReceivedText, m.MessagesReceivedBinary,
			m.MessagesSentText, m.MessagesSentBinary)
	}
	// Client frames are masked: 6 bytes of header; ours are not: 2. "hello" in, "hello done" out.
	if in := uint64(3*(6+5) + (6 + 3)); m.BytesReceived != in {
		t.Fatalf("bytes received %d, want %d", m.BytesReceived, in)
	}
	if out := uint64(3*(2+10) + (2 + 8)); m.BytesSent != out {
		t.Fatalf("bytes sent %d, want %d", m.BytesSent, out)
	}
	if m.BytesReceivedText != 3*(6+5) || m.BytesReceivedBinary != 6+3 || m.BytesSentText != 3*(2+10) || m.BytesSentBinary != 2+8 {
		t.Fatalf("bytes by type in %d/%d out %d/%d, want %d/%d and %d/%d", m.BytesReceivedText, m.BytesReceivedBinary,
			m.BytesSentText, m.BytesSentBinary, 3*(6+5), 6+3, 3*(2+10), 2+8)
	}
	for st, want := range map[int]uint64{101: 2, 429: 1, 400: 1, 403: 0} {
		if got := m.Handshakes[handshakeIndex(st)]; got != want {
			t.Errorf("handshakes %d: %d, want %d", st, got, want)
		}
	}

	// The client closes with 4000 (an application code: "other") and 1000.
	a.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"))
	b.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	waitFor(t, 5*time.Second, "both connections closed", func() bool { return ts.Metrics().Connections == 0 })
	m = ts.Metrics()
	if m.Closed[closedIndex(wsgate.CloseNormal)] != 1 || m.Closed[closedIndex(4000)] != 1 {
		t.Fatalf("closed by code %v, want one 1000 and one other", m.Closed)
	}
	var total uint64
	for _, n := range m.Closed {
		total += n
	}
	if total != 2 {
		t.Fatalf("closed %d connections in all, want 2", total)
	}
	if m.SlowConsumerCloses+m.PongTimeouts+m.WriteTimeouts+m.SendQueueDropped+m.HandlerPanics != 0 {
		t.Fatalf("failure counters moved on clean traffic: %+v", m)
	}
	if wsgate.MetricsCloseCodeLabel(closedIndex(4000)) != "other" || wsgate.MetricsCloseCodeLabel(0) != "1000" {
		t.Fatal("close code labels")
	}
}

// TestMetricsCountSlowConsumerAndDrops floods a client that never reads: under PolicyClose it is
// closed 1013 and counted once as a slow-consumer close; under PolicyDropNewest its drops count.
func TestMetricsCountSlowConsumerAndDrops(t *testing.T) {
	chunk := make([]byte, 32<<10)
	flood := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		for i := 0; i < 200; i++ { // 6 MB against a 1 MB queue
			if c.Send(wsgate.Binary, chunk) != nil {
				return
			}
		}
	})
	for _, p := range []wsgate.SlowConsumerPolicy{wsgate.PolicyClose, wsgate.PolicyDropNewest} {
		t.Run(p.String(), func(t *testing.T) {
			ts := startServer(t, flood, &wsgate.Config{SlowConsumer: p, WriteTimeout: 300 * time.Millisecond,
				CloseTimeout: 300 * time.Millisecond})
			ws := dial(t, ts.URL, nil)
			ws.WriteMessage(websocket.TextMessage, []byte("flood")) // and never read
			if p == wsgate.PolicyClose {
				// Opened first: the client may read the 101 before the server has registered the connection.
				waitFor(t, 10*time.Second, "the slow consumer's close", func() bool {
					m := ts.Metrics()
					return m.Opened == 1 && m.Connections == 0
				})
				m := ts.Metrics()
				if m.SlowConsumerCloses != 1 || m.Closed[closedIndex(wsgate.CloseTryAgainLater)] != 1 {
					t.Fatalf("slow-consumer closes %d, 1013 closes %d; want 1 and 1 (%+v)", m.SlowConsumerCloses,
						m.Closed[closedIndex(wsgate.CloseTryAgainLater)], m)
				}
				return
			}
			waitFor(t, 10*time.Second, "drops", func() bool { return ts.Metrics().SendQueueDropped > 0 })
			if m := ts.Metrics(); m.SlowConsumerCloses != 0 {
				t.Fatalf("drop policy counted a slow-consumer close: %+v", m)
			}
		})
	}
}

// TestMetricsCountPongTimeouts: a gorilla client that never reads never answers a ping.
func TestMetricsCountPongTimeouts(t *testing.T) {
	ts := startServer(t, echoDone, &wsgate.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	dial(t, ts.URL, nil) // and never read: no pong
	waitFor(t, 5*time.Second, "the pong timeout", func() bool { return ts.Metrics().PongTimeouts == 1 })
	m := ts.Metrics()
	if m.Connections != 0 || m.Closed[closedIndex(wsgate.CloseAbnormal)] != 1 || m.WriteTimeouts != 0 {
		t.Fatalf("after a pong timeout: %+v, want the connection closed 1006", m)
	}
}

// TestMetricsCountWriteTimeouts: 32 MiB to a gorilla client that never reads, within the send
// queue's bound: a write waits past WriteTimeout, and the close counts as a write timeout.
func TestMetricsCountWriteTimeouts(t *testing.T) {
	big := make([]byte, 4<<20)
	flood := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		for range 8 {
			if c.Send(wsgate.Binary, big) != nil {
				return
			}
		}
	})
	ts := startServer(t, flood, &wsgate.Config{WriteTimeout: 200 * time.Millisecond, SendQueueBytes: 64 << 20})
	ws := dial(t, ts.URL, nil) // never reads
	ws.WriteMessage(websocket.TextMessage, []byte("go"))
	waitFor(t, 10*time.Second, "the write timeout", func() bool { return ts.Metrics().WriteTimeouts == 1 })
	m := ts.Metrics()
	if m.PongTimeouts != 0 || m.SlowConsumerCloses != 0 || m.Closed[closedIndex(wsgate.CloseAbnormal)] != 1 {
		t.Fatalf("after a write timeout: %+v, want one 1006 and nothing else", m)
	}
}

// TestMetricsNeverGoBack: 40 gorilla clients at a time open, echo 5 messages and close, 200 in
// all, while another goroutine scrapes as fast as it can. The per-message counters are each
// connection's own and an ended connection's are folded into its shard's totals: no scrape may
// read less than the one before (a Prometheus counter that goes back reads as a reset), and once
// every connection is gone the totals are exact.
func TestMetricsNeverGoBack(t *testing.T) {
	ts := startServer(t, echoDone, nil)
	const clients, parallel, msgs = 200, 40, 5
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		var last wsgate.Metrics
		n := 0
		for {
			m := ts.Metrics()
			n++
			for _, f := range []struct {
				name      string
				now, then uint64
			}{
				{"messages received", m.MessagesReceivedText, last.MessagesReceivedText},
				{"messages sent", m.MessagesSentText, last.MessagesSentText},
				{"bytes received", m.BytesReceived, last.BytesReceived},
				{"bytes sent", m.BytesSent, last.BytesSent},
				// Each part only grows, the control bytes (the close frames, as connections
				// end throughout) too, which a difference taken from the total (as first
				// written) did not: a scrape between a write's two adds read data frames'
				// bytes as control, and the next took them back.
				{"text bytes received", m.BytesReceivedText, last.BytesReceivedText},
				{"control bytes received", m.BytesReceivedControl, last.BytesReceivedControl},
				{"text bytes sent", m.BytesSentText, last.BytesSentText},
				{"control bytes sent", m.BytesSentControl, last.BytesSentControl},
			} {
				if f.now < f.then {
					scraped <- fmt.Errorf("scrape %d: %s went back from %d to %d", n, f.name, f.then, f.now)
					return
				}
			}
			last = m
			select {
			case <-stop:
				if n < 100 {
					scraped <- fmt.Errorf("only %d scrapes while the clients ran", n)
					return
				}
				scraped <- nil
				return
			default:
			}
		}
	}()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ws, _, err := websocket.DefaultDialer.Dial(ts.URL, nil)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer ws.Close()
			for range msgs {
				if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				if _, _, err := ws.ReadMessage(); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
			}
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			ws.ReadMessage() // the server's close frame
		}()
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "every connection gone", func() bool { return ts.Metrics().Connections == 0 })
	close(stop)
	if err := <-scraped; err != nil {
		t.Fatal(err)
	}
	m := ts.Metrics()
	if m.MessagesReceivedText != clients*msgs || m.MessagesSentText != clients*msgs {
		t.Fatalf("messages in %d out %d, want %d each", m.MessagesReceivedText, m.MessagesSentText, clients*msgs)
	}
	// Per connection: 5 masked "hello" frames and a masked close frame (6 + 2 bytes) in; 5
	// "hello done" frames and our close frame (2 + 2) out.
	if in := uint64(clients * (msgs*(6+5) + 6 + 2)); m.BytesReceived != in {
		t.Errorf("bytes received %d, want %d", m.BytesReceived, in)
	}
	if out := uint64(clients * (msgs*(2+10) + 2 + 2)); m.BytesSent != out {
		t.Errorf("bytes sent %d, want %d", m.BytesSent, out)
	}
	if m.BytesReceivedText != clients*msgs*(6+5) || m.BytesReceivedControl != clients*(6+2) ||
		m.BytesSentText != clients*msgs*(2+10) || m.BytesSentControl != clients*(2+2) {
		t.Errorf("by type: in text %d control %d, out text %d control %d; want %d, %d, %d, %d",
			m.BytesReceivedText, m.BytesReceivedControl, m.BytesSentText, m.BytesSentControl,
			clients*msgs*(6+5), clients*(6+2), clients*msgs*(2+10), clients*(2+2))
	}
}

// TestMetricsCountBytesByFrameType: a fragmented text message with a ping between its frames
// (continuation frames count as text, the ping and its pong as control), then more binary and
// small text messages than the sockets buffer, written to a client that reads only afterwards,
// so that the socket takes frames in pieces (the tail of a frame bigger than maxCork, a cut in
// the stash of smaller ones): every byte is counted once, by its frame's type.
func TestMetricsCountBytesByFrameType(t *testing.T) {
	// Message i of a flood, 19-24 MB, more than loopback's buffers. "tail": frames bigger than
	// maxCork alone first (one the socket cuts leaves a tail), then smaller binary ones and small
	// text ones by turns, then small text ones. "stash": smaller binary ones and small text ones
	// by turns from the start (they gather in the stash, which the socket cuts), then small ones.
	const flood = 3000
	msg := func(kind string, i int) (wsgate.MessageType, int) {
		switch {
		case kind == "tail" && i < 120:
			return wsgate.Binary, 100000
		case i < 400 && i%2 == 0:
			return wsgate.Binary, 60000
		}
		return wsgate.Text, 100
	}
	// A "flood" is answered from the handler, whose writes are non-blocking (the reader's inline
	// write), so that what the socket does not take at once is cut; anything else is echoed.
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		kind, ok := strings.CutPrefix(string(m.Data), "flood ")
		if !ok {
			_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
			return
		}
		for i := range flood {
			typ, n := msg(kind, i)
			if err := c.Send(typ, bytes.Repeat([]byte("s"), n)); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}
	})
	ts := startServer(t, h, &wsgate.Config{SendQueueBytes: 64 << 20, SendQueueMessages: 8192})
	rc, _ := dialRaw(t, ts, nil)
	rc.write(frame{opcode: opText, payload: []byte("ab")}, frame{fin: true, opcode: opPing, payload: []byte("p")},
		frame{fin: true, opcode: opCont, payload: []byte("cd")})
	if f := rc.nextFrame(opPong); string(f.payload) != "p" {
		t.Fatalf("pong %q", f.payload)
	}
	rc.expectEcho("abcd")
	waitFor(t, 5*time.Second, "the echo and the pong counted", func() bool { return ts.Metrics().BytesSent == (2+1)+(2+9) })
	m := ts.Metrics()
	if m.BytesReceivedText != 2*(6+2) || m.BytesReceivedBinary != 0 || m.BytesReceivedControl != 6+1 || m.BytesReceived != 2*(6+2)+(6+1) {
		t.Fatalf("in: text %d binary %d control %d of %d; want 16, 0, 7 (the ping) of 23", m.BytesReceivedText, m.BytesReceivedBinary,
			m.BytesReceivedControl, m.BytesReceived)
	}
	if m.BytesSentText != 2+9 || m.BytesSentBinary != 0 || m.BytesSentControl != 2+1 {
		t.Fatalf("out: text %d binary %d control %d of %d; want 11, 0, 3 (the pong) of 14", m.BytesSentText, m.BytesSentBinary,
			m.BytesSentControl, m.BytesSent)
	}

	for _, kind := range []string{"tail", "stash"} {
		before := ts.Metrics()
		rc, _ := dialRaw(t, ts, nil) // a connection with nothing waiting to be written, at first
		rc.write(text("flood " + kind))
		time.Sleep(100 * time.Millisecond) // unread meanwhile: the socket fills
		var want [2]uint64                 // text, binary
		for i := range flood {
			typ, n := msg(kind, i)
			f, err := rc.readFrame()
			if err != nil {
				t.Fatalf("%s: message %d: %v", kind, i, err)
			}
			if len(f.payload) != n || wsgate.MessageType(f.opcode) != typ {
				t.Fatalf("%s: message %d: %s, want %d bytes of type %d", kind, i, f, n, typ)
			}
			want[typ-1] += uint64(len(f.bytes()) - 4) // the server's frames are not masked
		}
		waitFor(t, 5*time.Second, "every message counted", func() bool {
			m := ts.Metrics()
			return m.MessagesSentBinary+m.MessagesSentText == before.MessagesSentBinary+before.MessagesSentText+flood
		})
		m := ts.Metrics()
		txt, bin, all := m.BytesSentText-before.BytesSentText, m.BytesSentBinary-before.BytesSentBinary, m.BytesSent-before.BytesSent
		if txt != want[0] || bin != want[1] || all != want[0]+want[1] {
			t.Fatalf("%s: out: text %d binary %d of %d; want %d, %d of %d", kind, txt, bin, all, want[0], want[1], want[0]+want[1])
		}
	}
}
