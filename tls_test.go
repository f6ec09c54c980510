package wsgate_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// Over TLS the socket is a *tls.Conn: no non-blocking writes under the record layer, so every
// write is the writer goroutine's. The behaviour must not change: echoes of every size in order,
// batches, the close handshake, 1009, and Shutdown's 1001 after queued messages.
func TestOverTLS(t *testing.T) {
	srv, err := wsgate.NewServer(echoDone, &wsgate.Config{Logger: discardLogger(), ReadLimit: 1 << 20, SendQueueBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	hs := httptest.NewTLSServer(mux)
	defer hs.Close()
	url := "wss" + strings.TrimPrefix(hs.URL, "https") + "/ws"
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	dialTLS := func() *websocket.Conn {
		t.Helper()
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}

	ws := dialTLS()
	for _, n := range frameSizes {
		msg := payloadFor(n, n)
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, got, err := ws.ReadMessage()
		if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(got, append(msg, " done"...)) {
			t.Fatalf("echo of %d bytes: type %d, %d bytes, %v", n, typ, len(got), err)
		}
	}
	// Pipelined: many requests before reading, so that replies queue and leave in batches.
	for i := range 200 {
		if err := ws.WriteMessage(websocket.TextMessage, payloadFor(i, 40)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != string(payloadFor(i, 40))+" done" {
			t.Fatalf("pipelined reply %d: %q, %v", i, got, err)
		}
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, make([]byte, 2<<20)); err != nil {
		t.Fatal(err)
	}
	if ce := readClose(t, ws); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized: %v, want 1009", ce)
	}

	ws2 := dialTLS()
	echoOnce(t, ws2, "hello")
	if err := ws2.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if ce := readClose(t, ws2); ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("close answered with %v, want 1000", ce)
	}

	ws3 := dialTLS() // does not read until Shutdown has begun
	var c *wsgate.Conn
	waitFor(t, 5*time.Second, "the third connection", func() bool {
		srv.Range(func(cc *wsgate.Conn) bool {
			if cc.RemoteAddr().String() == ws3.LocalAddr().String() {
				c = cc
			}
			return c == nil
		})
		return c != nil
	})
	for i := range 50 { // 25 MiB: far more than the socket buffers hold, so much is still queued
		if err := c.Send(wsgate.Binary, payloadFor(i, 512<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the socket to fill", func() bool { return c.Stats().Queued > 0 && c.Stats().Sent > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for i := range 50 {
		_, got, err := ws3.ReadMessage()
		if err != nil || !bytes.Equal(got, payloadFor(i, 512<<10)) {
			t.Fatalf("queued message %d before 1001: %d bytes, %v", i, len(got), err)
		}
	}
	if ce := readClose(t, ws3); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("shutdown: %v, want 1001", ce)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
