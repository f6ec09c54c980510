// Package wstest starts wsgate servers on loopback for the tests of other packages (the client,
// the binary's client command), so that each does not grow its own copy.
package wstest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// Serve runs h on an httptest server on 127.0.0.1 at path /ws and returns the ws:// URL of that
// path. At cleanup it calls shutdown (nil allowed), then closes the HTTP server: httptest does not
// track hijacked connections, so shutdown is where a WebSocket server ends its own.
func Serve(t testing.TB, h http.Handler, shutdown func()) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		if shutdown != nil {
			shutdown()
		}
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// Wsgate serves h with a wsgate.Server configured by cfg (nil allowed; its Logger is replaced by
// one that discards) and returns the server and its ws:// URL. The server is shut down at cleanup.
func Wsgate(t testing.TB, h wsgate.Handler, cfg *wsgate.Config) (*wsgate.Server, string) {
	t.Helper()
	c := wsgate.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := wsgate.NewServer(h, &c)
	if err != nil {
		t.Fatal(err)
	}
	return srv, Serve(t, srv, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// FreeAddrs returns n loopback addresses that were free a moment ago, for servers that must
// know each other's addresses before any of them starts (the nodes of a cluster). Another
// process may take one in between; the servers then fail to start, plainly.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}
