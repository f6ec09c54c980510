package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
)

// Interop: the client against a server built on gorilla/websocket, an independent implementation
// of RFC 6455, so that the client is not only tested against the transport it shares with wsgate.

// gorillaServer echoes every message as is, and obeys two commands: "close CODE REASON" sends a
// close frame, "ping PAYLOAD" sends a ping. What it sees of the client is reported on events:
// "pong PAYLOAD", "close CODE REASON" (the client's close frame), "error ...".
type gorillaServer struct {
	up     websocket.Upgrader
	header http.Header // extra response headers
	events chan string
	conns  tracker
}

// tracker counts the connections a test server is running; wait returns when they have ended.
type tracker struct {
	mu sync.Mutex // orders add before wait for the race detector: the network does not
	wg sync.WaitGroup
}

func (t *tracker) add()  { t.mu.Lock(); t.wg.Add(1); t.mu.Unlock() }
func (t *tracker) done() { t.wg.Done() }
func (t *tracker) wait() { t.mu.Lock(); t.mu.Unlock(); t.wg.Wait() }

func startGorilla(t *testing.T, configure func(*gorillaServer)) (*gorillaServer, string) {
	s := &gorillaServer{events: make(chan string, 16)}
	s.up.CheckOrigin = func(*http.Request) bool { return true }
	if configure != nil {
		configure(s)
	}
	return s, serve(t, s, s.conns.wait)
}

// ServeHTTP runs a connection on the request's goroutine, until the client closes or drops it.
func (s *gorillaServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.conns.add()
	defer s.conns.done()
	ws, err := s.up.Upgrade(w, r, s.header)
	if err != nil {
		return
	}
	defer ws.Close()
	ws.SetReadLimit(4 << 20)
	ws.SetPongHandler(func(p string) error { s.events <- "pong " + p; return nil })
	deadline := func() time.Time { return time.Now().Add(5 * time.Second) }
	for {
		typ, p, err := ws.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			s.events <- fmt.Sprintf("close %d %s", ce.Code, ce.Text)
			return
		case err != nil:
			s.events <- "error " + err.Error()
			return
		}
		var code int
		var arg string
		switch cmd := string(p); {
		case strings.HasPrefix(cmd, "close "):
			_, _ = fmt.Sscanf(cmd, "close %d %s", &code, &arg)
			err = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, arg), deadline())
		case strings.HasPrefix(cmd, "ping "):
			err = ws.WriteControl(websocket.PingMessage, []byte(strings.TrimPrefix(cmd, "ping ")), deadline())
		default:
			err = ws.WriteMessage(typ, p)
		}
		if err != nil {
			s.events <- "error " + err.Error()
			return
		}
	}
}

// event returns the server's next report.
func (s *gorillaServer) event(t *testing.T) string {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event from the gorilla server within 5s")
		return ""
	}
}

func TestInteropEcho(t *testing.T) {
	for _, compression := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compression], func(t *testing.T) {
			_, url := startGorilla(t, func(s *gorillaServer) { s.up.EnableCompression = compression })
			c := dial(t, url, &client.Options{Compression: compression})
			big := bytes.Repeat([]byte("wsgate "), (1<<20)/7+1)[:1<<20]
			for _, m := range []struct {
				typ  wsgate.MessageType
				data []byte
			}{
				{wsgate.Text, []byte("Hello!")},
				{wsgate.Binary, []byte{0, 1, 2, 0xff}},
				{wsgate.Text, []byte{}},
				{wsgate.Text, []byte("héllo wörld ✓")},
				{wsgate.Binary, big},
				{wsgate.Text, big},
			} {
				if err := c.Write(ctxT(t, 10*time.Second), m.typ, m.data); err != nil {
					t.Fatalf("write %v of %d bytes: %v", m.typ, len(m.data), err)
				}
				typ, got, err := c.Read(ctxT(t, 10*time.Second))
				if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
					t.Fatalf("echo of %v %d bytes: got %v %d bytes, %v", m.typ, len(m.data), typ, len(got), err)
				}
			}
			if err := c.Close(wsgate.CloseNormal, ""); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestInteropClientCloses(t *testing.T) {
	s, url := startGorilla(t, nil)
	c := dial(t, url, nil)
	if err := c.Close(4000, "bye"); err != nil {
		t.Fatalf("Close: %v (gorilla echoes the close frame)", err)
	}
	if e := s.event(t); e != "close 4000 bye" {
		t.Fatalf("server saw %q", e)
	}
	if ce := readEnd(t, c); ce.Code != 4000 || ce.Remote {
		t.Fatalf("client's end: %v", ce)
	}
}

func TestInteropServerCloses(t *testing.T) {
	for _, tc := range []struct {
		code   wsgate.CloseCode
		answer int // what the client's close frame carries back
	}{
		{wsgate.CloseGoingAway, 1000},
		{wsgate.ClosePolicyViolation, 1000},
		{4001, 4001},
	} {
		s, url := startGorilla(t, nil)
		c := dial(t, url, nil)
		write(t, c, wsgate.Text, fmt.Sprintf("close %d reason%d", tc.code, tc.code))
		if ce := readEnd(t, c); ce.Code != tc.code || ce.Reason != fmt.Sprint("reason", int(tc.code)) || !ce.Remote {
			t.Fatalf("client saw %v, want %d by peer", ce, tc.code)
		}
		if e := s.event(t); !strings.HasPrefix(e, fmt.Sprintf("close %d", tc.answer)) {
			t.Fatalf("server got %q back, want close %d", e, tc.answer)
		}
	}
}

func TestInteropPings(t *testing.T) {
	s, url := startGorilla(t, nil)
	c := dial(t, url, nil)
	if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Ping: %v (gorilla answers with the payload)", err)
	}
	write(t, c, wsgate.Text, "ping payload-42")
	if e := s.event(t); e != "pong payload-42" {
		t.Fatalf("server got %q, want the ping's payload back", e)
	}
}

func TestInteropHandshake(t *testing.T) {
	_, url := startGorilla(t, func(s *gorillaServer) { s.up.CheckOrigin = func(*http.Request) bool { return false } })
	if _, _, err := client.Dial(ctxT(t, 5*time.Second), url, &client.Options{Origin: "https://evil.example"}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("refused origin: %v, want a 403 HandshakeError", err)
	}

	_, url = startGorilla(t, func(s *gorillaServer) { s.up.Subprotocols = []string{"v2", "chat"} })
	if c := dial(t, url, &client.Options{Subprotocols: []string{"x", "chat"}}); c.Subprotocol() != "chat" {
		t.Fatalf("subprotocol %q, want chat", c.Subprotocol())
	}

	_, url = startGorilla(t, func(s *gorillaServer) { s.header = http.Header{"Sec-Websocket-Protocol": {"evil"}} })
	if _, _, err := client.Dial(ctxT(t, 5*time.Second), url, &client.Options{Subprotocols: []string{"chat"}}); !errors.Is(err, client.ErrBadHandshake) || !strings.Contains(err.Error(), "evil") {
		t.Fatalf("a subprotocol not offered: %v, want ErrBadHandshake", err)
	}
}

func TestInteropCloseTimeout(t *testing.T) {
	// A server that never reads never answers the close frame.
	release := make(chan struct{})
	var conns tracker
	up := websocket.Upgrader{}
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.add()
		defer conns.done()
		if ws, err := up.Upgrade(w, r, nil); err == nil {
			<-release
			ws.Close()
		}
	}), func() { close(release); conns.wait() })
	c := dial(t, url, &client.Options{CloseTimeout: 200 * time.Millisecond})
	start := time.Now()
	if err := c.Close(wsgate.CloseNormal, ""); !errors.Is(err, client.ErrCloseTimeout) {
		t.Fatalf("Close: %v, want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Close took %v, want about 200ms", d)
	}
	if ce := readEnd(t, c); ce.Code != wsgate.CloseNormal || !errors.Is(ce, client.ErrCloseTimeout) {
		t.Fatalf("end: %v, want 1000 with ErrCloseTimeout", ce)
	}
}
