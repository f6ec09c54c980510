package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/testport"
)

// These tests run the client against wsgate's own server on loopback; interop_test.go runs it
// against an independent implementation.

func TestEchoTextAndBinary(t *testing.T) {
	_, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	echoes(t, c, wsgate.Text, "Hello!")
	echoes(t, c, wsgate.Binary, "\x00\xff")
	echoes(t, c, wsgate.Text, "")
}

// echoes sends msg and checks that echoDone's reply comes back in the same type.
func echoes(t *testing.T, c *client.Conn, typ wsgate.MessageType, msg string) {
	t.Helper()
	write(t, c, typ, msg)
	if gotTyp, got := read(t, c); gotTyp != typ || got != msg+" done" {
		t.Fatalf("sent %v %q, got %v %q; want the same type and %q", typ, msg, gotTyp, got, msg+" done")
	}
}

func TestReadDataIsOwnedByCaller(t *testing.T) {
	_, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	var kept [][]byte
	for _, m := range []string{"first", "second", "third"} {
		write(t, c, wsgate.Text, m)
		_, data, err := c.Read(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, data)
	}
	for i, want := range []string{"first done", "second done", "third done"} {
		if string(kept[i]) != want {
			t.Fatalf("message %d changed after later reads: %q, want %q", i, kept[i], want)
		}
	}
}

func TestLargeMessages(t *testing.T) {
	const size = 1 << 20
	for _, compression := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "deflate"}[compression], func(t *testing.T) {
			_, url := startWsgate(t, echoDone, &wsgate.Config{
				ReadLimit: 2 * size, SendQueueBytes: 4 * size, Compression: compression,
			})
			c := dial(t, url, &client.Options{Compression: compression})
			msg := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			msg[size/2] = 'X'
			if err := c.Write(ctxT(t, 10*time.Second), wsgate.Binary, msg); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.Read(ctxT(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if want := append(msg, " done"...); typ != wsgate.Binary || !bytes.Equal(got, want) {
				t.Fatalf("got %v of %d bytes, want the %d bytes echoed", typ, len(got), len(want))
			}
		})
	}
}

func TestClientCloseCodeReachesServer(t *testing.T) {
	rec := newCloseRecorder(echoDone)
	_, url := startWsgate(t, rec, nil)
	c := dial(t, url, nil)
	if err := c.Close(4000, "bye now"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ce := rec.next(t); ce.Code != 4000 || ce.Reason != "bye now" || !ce.Remote {
		t.Fatalf("server saw %v, want 4000 \"bye now\" by peer", ce)
	}
	if ce := readEnd(t, c); ce.Code != 4000 || ce.Remote || ce.Err != nil {
		t.Fatalf("client's end: %v, want 4000 started by us, clean", ce)
	}
	if err := c.Write(ctxT(t, time.Second), wsgate.Text, []byte("late")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(1000, ""); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

func TestServerCloseCodeReachesClient(t *testing.T) {
	_, url := startWsgate(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Close(4001, string(m.Data))
	}), nil)
	c := dial(t, url, nil)
	write(t, c, wsgate.Text, "go away")
	if ce := readEnd(t, c); ce.Code != 4001 || ce.Reason != "go away" || !ce.Remote {
		t.Fatalf("got %v, want 4001 \"go away\" by peer", ce)
	}
	if ce := readEnd(t, c); ce.Code != 4001 {
		t.Fatalf("Read after the end: %v, want the same CloseError again", ce)
	}
	if err := c.Ping(ctxT(t, time.Second)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Ping after the end: %v, want ErrClosed", err)
	}
}

func TestServerShutdownIs1001(t *testing.T) {
	srv, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }() // owner: the test; ends when the client answers
	if ce := readEnd(t, c); ce.Code != wsgate.CloseGoingAway || !ce.Remote {
		t.Fatalf("got %v, want 1001 by peer", ce)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v (the client did not answer the close frame?)", err)
	}
	if _, _, err := client.Dial(ctxT(t, 5*time.Second), url, nil); !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("dial after shutdown: %v, want a 503 HandshakeError", err)
	}
}

// isStatus reports whether err is a *HandshakeError with the given status.
func isStatus(err error, status int) bool {
	var he *client.HandshakeError
	return errors.As(err, &he) && he.StatusCode == status && errors.Is(err, client.ErrBadHandshake)
}

func TestPingPong(t *testing.T) {
	// The server pings every 20 ms of silence and drops a peer that does not answer within 250 ms
	// (enough for a loaded machine running the race detector).
	_, url := startWsgate(t, echoDone, &wsgate.Config{PingInterval: 20 * time.Millisecond, PongTimeout: 250 * time.Millisecond})
	c := dial(t, url, nil)
	reading := make(chan error, 1)
	go func() { // owner: the test; ends at CloseNow
		_, _, err := c.Read(context.Background())
		reading <- err
	}()
	for range 3 {
		if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	time.Sleep(time.Second) // dozens of server heartbeats, each answered by the reader
	select {
	case err := <-reading:
		t.Fatalf("connection ended while idle and answering pings: %v", err)
	default:
	}
	c.CloseNow()
	if err := <-reading; wsgate.CloseStatus(err) != wsgate.CloseAbnormal {
		t.Fatalf("after CloseNow, Read returned %v, want 1006", err)
	}
}

func TestPingWaitsBehindUnreadMessage(t *testing.T) {
	_, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Ping with nothing to read: %v", err)
	}
	write(t, c, wsgate.Text, "unread")
	// The server may put its first pong before the reply; once that pong is in, the reply is too.
	_ = c.Ping(ctxT(t, 200*time.Millisecond))
	if err := c.Ping(ctxT(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping behind an unread message: %v, want DeadlineExceeded", err)
	}
	if _, got := read(t, c); got != "unread done" {
		t.Fatalf("got %q", got)
	}
	if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Ping once read: %v", err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	_, url := startWsgate(t, echoDone, &wsgate.Config{MaxConnections: 1})
	_, resp, err := client.Dial(ctxT(t, 5*time.Second), url, &client.Options{Origin: "https://evil.example"})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 403 || !strings.Contains(he.Body, "origin not allowed") {
		t.Fatalf("foreign origin: %v, want a 403 HandshakeError saying why", err)
	}
	if !strings.Contains(err.Error(), "403 Forbidden") || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("error %q / response %v: want the status in both", err, resp)
	}
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/ws"), "ws://")
	c := dial(t, url, &client.Options{Origin: "http://" + host}) // same origin
	if _, _, err := client.Dial(ctxT(t, 5*time.Second), url, nil); !isStatus(err, 503) {
		t.Fatalf("over MaxConnections: %v, want 503", err)
	}
	c.CloseNow()
}

func TestSubprotocols(t *testing.T) {
	_, url := startWsgate(t, echoDone, &wsgate.Config{Subprotocols: []string{"wsgate.v1", "chat"}})
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"chat"}, "chat"},
		{[]string{"chat", "wsgate.v1"}, "wsgate.v1"}, // the server's preference wins
		{[]string{"mqtt"}, ""},                       // none in common: connected without one
		{nil, ""},
	} {
		c := dial(t, url, &client.Options{Subprotocols: tc.offer})
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("offered %q: got %q, want %q", tc.offer, got, tc.want)
		}
		c.CloseNow()
	}
}

func TestHeadersReachServer(t *testing.T) {
	got := make(chan http.Header, 1)
	_, url := startWsgate(t, openHook(func(c *wsgate.Conn) { got <- c.Header() }), &wsgate.Config{KeepHeaders: []string{"*"}})
	dial(t, url, &client.Options{Header: http.Header{"Authorization": {"Bearer t0k"}, "X-Trace": {"1", "2"}}})
	h := <-got
	if h.Get("Authorization") != "Bearer t0k" || len(h.Values("X-Trace")) != 2 {
		t.Fatalf("server saw headers %v", h)
	}
}

// openHook is an echo handler that also calls f on open.
type openHook func(*wsgate.Conn)

func (f openHook) OnOpen(c *wsgate.Conn)                    { f(c) }
func (openHook) OnMessage(c *wsgate.Conn, m wsgate.Message) { echoDone(c, m) }
func (openHook) OnClose(*wsgate.Conn, error)                {}

func TestReadLimit(t *testing.T) {
	rec := newCloseRecorder(echoDone)
	_, url := startWsgate(t, rec, nil)
	c := dial(t, url, &client.Options{ReadLimit: 10})
	write(t, c, wsgate.Text, "0123456789") // the reply, 15 bytes, is over the limit
	if ce := readEnd(t, c); ce.Code != wsgate.CloseMessageTooBig || ce.Remote {
		t.Fatalf("client: %v, want 1009 from our side", ce)
	}
	if ce := rec.next(t); ce.Code != wsgate.CloseMessageTooBig || !ce.Remote {
		t.Fatalf("server saw %v, want 1009 by peer", ce)
	}
}

func TestWriteRefusalsKeepConnection(t *testing.T) {
	_, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	if err := c.Write(ctxT(t, time.Second), wsgate.Text, []byte{0xff}); !errors.Is(err, client.ErrInvalidUTF8) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	if err := c.Write(ctxT(t, time.Second), 9, nil); !errors.Is(err, client.ErrInvalidMessageType) {
		t.Fatalf("type 9: %v", err)
	}
	if err := c.Close(1005, ""); !errors.Is(err, client.ErrInvalidCloseCode) {
		t.Fatalf("Close(1005): %v", err)
	}
	echoes(t, c, wsgate.Text, "still here")
}

func TestReadContextLeavesConnectionOpen(t *testing.T) {
	_, url := startWsgate(t, echoDone, nil)
	c := dial(t, url, nil)
	if _, _, err := c.Read(ctxT(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: %v, want DeadlineExceeded", err)
	}
	echoes(t, c, wsgate.Text, "after")
}

func TestCloseNowIsAbnormalForServer(t *testing.T) {
	rec := newCloseRecorder(echoDone)
	_, url := startWsgate(t, rec, nil)
	c := dial(t, url, nil)
	c.CloseNow()
	c.CloseNow() // idempotent
	if ce := rec.next(t); ce.Code != wsgate.CloseAbnormal {
		t.Fatalf("server saw %v, want 1006", ce)
	}
	if ce := readEnd(t, c); ce.Code != wsgate.CloseAbnormal || ce.Remote {
		t.Fatalf("client's end: %v", ce)
	}
}

func TestMessagesDuringCloseAreRead(t *testing.T) {
	// The server answers the close frame only after a message of its own: Read still gets it.
	_, url := startWsgate(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		_ = c.Send(wsgate.Text, []byte("last words"))
		_ = c.Close(wsgate.CloseNormal, "")
	}), nil)
	c := dial(t, url, nil)
	write(t, c, wsgate.Text, "trigger")
	typ, data, err := c.Read(ctxT(t, 5*time.Second))
	if err != nil || typ != wsgate.Text || string(data) != "last words" {
		t.Fatalf("got %v %q %v", typ, data, err)
	}
	if ce := readEnd(t, c); ce.Code != wsgate.CloseNormal || !ce.Remote {
		t.Fatalf("got %v", ce)
	}
}

func TestDialFailures(t *testing.T) {
	for _, url := range []string{"http://127.0.0.1/ws", "127.0.0.1:80", "ws://", "ws://a b"} {
		if _, _, err := client.Dial(ctxT(t, time.Second), url, nil); !errors.Is(err, client.ErrBadURL) {
			t.Errorf("Dial(%q): %v, want ErrBadURL", url, err)
		}
	}
	for _, o := range []*client.Options{
		{Header: http.Header{"Sec-Websocket-Protocol": {"chat"}}},
		{Subprotocols: []string{"a b"}},
		{ReadLimit: -1},
	} {
		if _, _, err := client.Dial(ctxT(t, time.Second), "ws://127.0.0.1:1/", o); !errors.Is(err, client.ErrBadOptions) {
			t.Errorf("Dial with %+v: %v, want ErrBadOptions", o, err)
		}
	}

	// Nothing listens: connection refused.
	addr := testport.Addr(t)
	if _, _, err := client.Dial(ctxT(t, 5*time.Second), "ws://"+addr+"/", nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: %v, want connection refused", err)
	}

	// A listener that accepts and never answers: the handshake timeout, or the context, ends Dial.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // owner: the test; ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	url := "ws://" + ln.Addr().String() + "/"
	start := time.Now()
	if _, _, err := client.Dial(context.Background(), url, &client.Options{HandshakeTimeout: 100 * time.Millisecond}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent server: %v, want DeadlineExceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, _, err := client.Dial(ctx, url, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the two Dials took %v", d)
	}
}

// TestSentinelsMatchTheServers: a client error that means what a server error means matches it
// under errors.Is, so code handling both sides needs one check.
func TestSentinelsMatchTheServers(t *testing.T) {
	for _, tc := range []struct{ client, server error }{
		{client.ErrClosed, wsgate.ErrClosed},
		{client.ErrCloseTimeout, wsgate.ErrCloseTimeout},
		{client.ErrInvalidCloseCode, wsgate.ErrInvalidCloseCode},
		{client.ErrInvalidMessageType, wsgate.ErrInvalidMessageType},
		{client.ErrInvalidUTF8, wsgate.ErrInvalidUTF8},
	} {
		if !errors.Is(tc.client, tc.server) || !errors.Is(fmt.Errorf("wrapped: %w", tc.client), tc.server) {
			t.Errorf("%v does not match %v", tc.client, tc.server)
		}
	}
}

// A wsgate that sheds handshakes (Config.MaxHandshakeRate) answers 503 with Retry-After, and the
// HandshakeError carries the wait it asked for.
func TestShedHandshakeCarriesRetryAfter(t *testing.T) {
	_, url := startWsgate(t, echoDone, &wsgate.Config{MaxHandshakeRate: 1})
	dial(t, url, nil) // takes the one handshake of this second
	_, _, err := client.Dial(ctxT(t, 5*time.Second), url, nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second dial: %v, want 503", err)
	}
	if he.RetryAfter < time.Second || he.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter = %v, want the whole seconds until the next handshake (1 s to a minute)", he.RetryAfter)
	}
}
