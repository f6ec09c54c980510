package wsgate_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsgate/wsgate"
)

// Where time is what a test is about, it runs in a synctest bubble: the server and its peer talk
// over net.Pipe (real sockets block outside the bubble, and its fake clock would not advance), so
// the defaults (25 s pings, 5 s close timeout) are tested as they are, exactly, in no time.

// hijacker is the http.ResponseWriter of one request whose connection is an in-memory pipe.
type hijacker struct {
	conn net.Conn
	h    http.Header
}

func (h *hijacker) Header() http.Header {
	if h.h == nil {
		h.h = http.Header{}
	}
	return h.h
}
func (h *hijacker) Write(p []byte) (int, error) { return len(p), nil }
func (h *hijacker) WriteHeader(int)             {}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// pipeClient upgrades one connection of srv over net.Pipe and returns the client's end. Call it
// inside a bubble.
func pipeClient(t *testing.T, srv *wsgate.Server) *rawConn {
	t.Helper()
	cli, conn := net.Pipe()
	req := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", testKey)
	req.Header.Set("Sec-WebSocket-Version", "13")
	served := make(chan struct{})
	go func() { // owner: pipeClient, which waits for it
		defer close(served)
		srv.ServeHTTP(&hijacker{conn: conn}, req)
	}()
	rc := &rawConn{t: t, nc: cli, br: bufio.NewReader(cli)}
	resp, err := http.ReadResponse(rc.br, req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rc.mustUpgrade(resp)
	<-served
	t.Cleanup(func() { cli.Close() })
	return rc
}

// bubbleServer returns a server for h (defaults but the logger), shut down when the test ends.
// Call it inside a bubble, with a handler made there too (its channels must be the bubble's).
func bubbleServer(t *testing.T, h wsgate.Handler) *wsgate.Server {
	t.Helper()
	srv, err := wsgate.NewServer(h, &wsgate.Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// A close the peer never answers ends exactly DefaultCloseTimeout after Close.
func TestCloseTimeoutIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(nil)
		srv := bubbleServer(t, rec)
		rc := pipeClient(t, srv)
		var c *wsgate.Conn
		srv.Range(func(cc *wsgate.Conn) bool { c = cc; return false })
		start := time.Now()
		_ = c.Close(wsgate.CloseNormal, "bye")
		if got := parseClose(t, rc.nextFrame(opClose).payload); got.code != 1000 {
			t.Fatalf("closed with %d", got.code)
		}
		_, ce := rec.nextClose(t, time.Hour) // the client never answers
		if took := time.Since(start); took != wsgate.DefaultCloseTimeout || !errors.Is(ce, wsgate.ErrCloseTimeout) {
			t.Fatalf("ended after %v with %+v; want exactly %v, ErrCloseTimeout", took, ce, wsgate.DefaultCloseTimeout)
		}
	})
}

// answerPings answers every ping rc gets, calling onPing (if not nil) first, until the connection
// ends; other frames are read and dropped.
func answerPings(rc *rawConn, onPing func()) {
	for {
		f, err := rc.readFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return
		}
		if f.opcode == opPing {
			if onPing != nil {
				onPing()
			}
			_ = rc.trySend(frame{fin: true, opcode: opPong, payload: f.payload}.bytes())
		}
	}
}

// With the default heartbeat, a peer that reads but never answers pings is dropped within
// PingInterval+PongTimeout of its last frame, and one that answers them stays.
func TestHeartbeatBoundsWithDefaults(t *testing.T) {
	const bound = wsgate.DefaultPingInterval + wsgate.DefaultPongTimeout
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(nil)
		srv := bubbleServer(t, rec)
		mute := pipeClient(t, srv)
		live := pipeClient(t, srv)
		opened := time.Now()
		go func() { // owner: the bubble; ends when the server drops the connection
			for {
				if _, err := mute.readFrame(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
			}
		}()
		go answerPings(live, nil) // owner: the bubble; until the server shuts down
		_, ce := rec.nextClose(t, time.Hour)
		took := time.Since(opened)
		if !errors.Is(ce, wsgate.ErrPongTimeout) || took > bound || took < bound-3*time.Second {
			t.Fatalf("the mute peer was dropped after %v with %+v; want ErrPongTimeout within %v", took, ce, bound)
		}
		time.Sleep(10 * bound)
		if n := srv.Stats().Connections; n != 1 {
			t.Fatalf("%d connections after %v; want the live one", n, 10*bound)
		}
		t.Logf("mute peer dropped after %v; the live one still there after %v", took, time.Since(opened))
	})
}
