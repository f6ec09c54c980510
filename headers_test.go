package wsgate_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/wsgate/wsgate"
)

// What a connection keeps of its upgrade request, and how big a request may be.

// TestHeaderBytesPerConnection measures, from outside, the heap that idle connections hold when
// their handshakes carry big and many headers, against connections with the usual few: what a
// connection does not need of its request must not stay for its whole life.
func TestHeaderBytesPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	const n = 300
	heavy := func(h http.Header) {
		h.Set("X-Big", strings.Repeat("b", 8<<10))
		for i := range 100 {
			h.Set(fmt.Sprintf("X-Small-%d", i), "v")
		}
	}
	heapWith := func(edit func(http.Header)) uint64 {
		ts := startServer(t, echoOrClose, nil)
		before := heapInUse()
		for range n {
			dialRaw(t, ts, edit)
		}
		waitFor(t, ioWait, "every connection registered", func() bool { return ts.Stats().Connections == n })
		return heapInUse() - before
	}
	plain := heapWith(nil)
	big := heapWith(heavy)
	extra := (int64(big) - int64(plain)) / n
	t.Logf("heap per idle connection: %d bytes plain, %d with 8 KiB + 100 extra headers: %d more",
		plain/n, big/n, extra)
	if extra > 2<<10 {
		t.Errorf("a connection whose handshake carried 12 KiB of headers nobody asked to keep holds %d bytes more than a plain one, want < 2 KiB", extra)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHandshakeSizeLimits refuses a request target or headers over MaxHeaderBytes, whatever limit
// the http.Server in front has (httptest's is Go's 1 MB default).
func TestHandshakeSizeLimits(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	target := func(n int) []byte {
		return []byte(strings.Replace(string(upgradeRequest(http.MethodGet, ts.addr(), nil)), "GET /ws ", "GET /ws?q="+strings.Repeat("u", n)+" ", 1))
	}
	cases := []struct {
		name string
		req  []byte
		want int
	}{
		{"a 1 MB request target", target(1000 << 10), http.StatusRequestURITooLong},
		{"a request target over 16 KiB", target(16 << 10), http.StatusRequestURITooLong},
		{"a 1 KiB request target", target(1 << 10), http.StatusSwitchingProtocols},
		{"a 900 KB header", upgradeRequest(http.MethodGet, ts.addr(), set("X-Big", strings.Repeat("h", 900<<10))),
			http.StatusRequestHeaderFieldsTooLarge},
		{"10,000 small headers", upgradeRequest(http.MethodGet, ts.addr(), func(h http.Header) {
			for i := range 10000 {
				h.Set(fmt.Sprintf("X-%d", i), "v")
			}
		}), http.StatusRequestHeaderFieldsTooLarge},
		{"400 small headers (32 bytes each beside name and value)", upgradeRequest(http.MethodGet, ts.addr(), func(h http.Header) {
			for i := range 400 {
				h.Set(fmt.Sprintf("X-%d", i), "v")
			}
		}), http.StatusSwitchingProtocols},
		{"a 12 KiB cookie", upgradeRequest(http.MethodGet, ts.addr(), set("Cookie", "s="+strings.Repeat("c", 12<<10))),
			http.StatusSwitchingProtocols},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, body := handshakeBody(t, ts, tc.req)
			if resp.StatusCode != tc.want {
				t.Errorf("answered %s %.80q, want %d", resp.Status, body, tc.want)
			}
		})
	}
	small := startServer(t, echoOrClose, &wsgate.Config{MaxHeaderBytes: 1 << 10})
	runHandshakeCases(t, small, []handshakeCase{
		{"a 2 KiB header under MaxHeaderBytes 1 KiB", "", set("X-Big", strings.Repeat("h", 2<<10)), http.StatusRequestHeaderFieldsTooLarge},
		{"a 500-byte header under MaxHeaderBytes 1 KiB", "", set("X-Big", strings.Repeat("h", 500)), http.StatusSwitchingProtocols},
	})
}

// TestConnHeaderKeepsWhatItIsTold checks what Conn.Header returns: by default the headers an
// application identifies a client by (DefaultKeepHeaders), with KeepHeaders the ones it names, and
// with "*" all of them; never the handshake's own.
func TestConnHeaderKeepsWhatItIsTold(t *testing.T) {
	sent := http.Header{"Cookie": {"s=1"}, "User-Agent": {"test"}, "Authorization": {"Bearer x"}, "Accept-Language": {"fr"},
		"X-Forwarded-For": {"192.0.2.1"}, "X-Trace": {"a", "b"}, "Cache-Control": {"no-cache"}}
	for _, tc := range []struct {
		name string
		keep []string
		want http.Header
	}{
		{"default", nil, http.Header{"Cookie": {"s=1"}, "User-Agent": {"test"}, "Authorization": {"Bearer x"},
			"Accept-Language": {"fr"}, "X-Forwarded-For": {"192.0.2.1"}}},
		{"named", []string{"x-trace", "cookie"}, http.Header{"X-Trace": {"a", "b"}, "Cookie": {"s=1"}}},
		{"all", []string{"*"}, http.Header{"Cookie": {"s=1"}, "User-Agent": {"test"}, "Authorization": {"Bearer x"},
			"Accept-Language": {"fr"}, "X-Forwarded-For": {"192.0.2.1"}, "X-Trace": {"a", "b"}, "Cache-Control": {"no-cache"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan http.Header, 1)
			ts := startServer(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) { got <- c.Header() }),
				&wsgate.Config{KeepHeaders: tc.keep})
			rc, _ := dialRaw(t, ts, func(h http.Header) {
				for k, v := range sent {
					h[k] = v
				}
			})
			rc.write(text("x"))
			h := <-got
			if fmt.Sprint(h) != fmt.Sprint(tc.want) { // fmt sorts map keys
				t.Errorf("Header() = %v\nwant       %v", h, tc.want)
			}
		})
	}
}
