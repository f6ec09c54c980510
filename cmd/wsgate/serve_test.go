package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// get fetches url with a client of its own, closed at cleanup so that no keep-alive goroutine stays.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// dialWS opens a WebSocket to the server at addr, as a browser page from origin would ("" for none).
func dialWS(t *testing.T, addr, origin string) *websocket.Conn {
	t.Helper()
	var h http.Header
	if origin != "" {
		h = http.Header{"Origin": {origin}}
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", h)
	if err != nil {
		t.Fatalf("dial %s from origin %q: %v", addr, origin, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// echo sends data as typ and checks the reply is "<data> done" in the same type.
func echo(t *testing.T, ws *websocket.Conn, typ int, data string) {
	t.Helper()
	if err := ws.WriteMessage(typ, []byte(data)); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	gotTyp, got, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if gotTyp != typ || string(got) != data+" done" {
		t.Fatalf("sent (%d, %q), got (%d, %q); want (%d, %q)", typ, data, gotTyp, got, typ, data+" done")
	}
}

func TestServeEndToEnd(t *testing.T) {
	r := startRun(t)
	base := "http://" + r.addr

	resp, body := get(t, base+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="open"`) || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q, body %.80q…; want the demo page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("GET / CSP = %q", csp)
	}
	if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("GET / X-Content-Type-Options = %q", v)
	}
	if resp, body := get(t, base+"/app.js"); resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(body, "textContent") {
		t.Errorf("GET /app.js = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := get(t, base+"/healthz"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
	if resp, _ := get(t, base+"/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, base+"/ws"); resp.StatusCode != 400 {
		t.Errorf("GET /ws without upgrade = %d, want 400", resp.StatusCode)
	}

	// The page's own origin is allowed (same origin), another is not.
	ws := dialWS(t, r.addr, base)
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws", http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("dial from another origin: %v, want 403", err)
	}
	echo(t, ws, websocket.TextMessage, "Hello!")
	echo(t, ws, websocket.BinaryMessage, "Hello!")
	echo(t, ws, websocket.TextMessage, "你好")
	if r.logs.find("connection open", map[string]any{"conn": float64(1)}) == nil { // OnOpen ran before the first reply
		t.Errorf("no debug log of the open; logs:\n%s", r.logs)
	}

	// Cancelling run's context shuts down: the client is told 1001, run returns nil.
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }() // owner: this test; ends when run returns
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after cancel, client read %v; want close 1001", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
	if r.logs.find("connection closed", map[string]any{"code": float64(1001), "reason": "server shutting down"}) == nil {
		t.Errorf("no debug log of the close with code 1001; logs:\n%s", r.logs)
	}
	for _, msg := range []string{"shutting down", "stopped"} {
		if r.logs.find(msg, nil) == nil {
			t.Errorf("no %q log; logs:\n%s", msg, r.logs)
		}
	}
	if strings.Contains(r.logs.String(), "Hello!") {
		t.Errorf("payloads must never be logged; logs:\n%s", r.logs)
	}
}

func TestPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"-addr", ln.Addr().String()}, noEnv, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "listen tcp "+ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("run on a taken port = %v; want listen tcp %s: … address already in use", err, ln.Addr())
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if strings.Contains(stderr.String(), "listening") {
		t.Errorf("logged listening although listen failed: %s", &stderr)
	}
}

// TestHTTPTimeoutsSpareWebSockets checks that the http.Server's timeouts, meant for page requests,
// do not cut a hijacked WebSocket connection: net/http clears deadlines on hijack.
func TestHTTPTimeoutsSpareWebSockets(t *testing.T) {
	o := defaultOptions()
	o.http = httpTimeouts{readHeader: 50 * time.Millisecond, read: 50 * time.Millisecond, write: 50 * time.Millisecond, idle: 50 * time.Millisecond}
	g, err := newGateway(context.Background(), &o, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.serve(ctx, ln) }() // owner: this test; ends at cancel
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve = %v", err)
		}
	}()

	ws := dialWS(t, ln.Addr().String(), "")
	echo(t, ws, websocket.TextMessage, "before")
	time.Sleep(200 * time.Millisecond) // four times every HTTP timeout: the point of the test is time passing
	echo(t, ws, websocket.TextMessage, "after")
	ws.Close() // before the deferred shutdown, which would otherwise wait CloseTimeout for a reply
}

// TestShutdownTimeout checks that a client that never answers the 1001 close frame is cut after
// -shutdown-timeout, and that run says so.
func TestShutdownTimeout(t *testing.T) {
	r := startRun(t, "-shutdown-timeout", "100ms", "-close-timeout", "1m")
	ws := dialWS(t, r.addr, "")
	echo(t, ws, websocket.TextMessage, "Hello!")
	start := time.Now()
	err := r.stop(t) // the client does not read, so it never answers the close frame
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "shutdown after 100ms") || took > 5*time.Second {
		t.Fatalf("run = %v after %v; want a shutdown timeout error after about 100ms", err, took)
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("client read %v; want the 1001 close frame that was sent before the cut", err)
	}
}

// rawGet writes req on a new TCP connection to addr and returns the whole response, head and body.
func rawGet(t *testing.T, addr, req string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var head strings.Builder
	resp.Header.Write(&head)
	return resp.Status + "\n" + head.String() + "\n" + string(body)
}

// TestRepliesEchoNoInput checks that no reply quotes what the client sent: http.ServeMux would
// redirect "/a/../<path>" to "/<path>", echoing a path as long as the header limit.
func TestRepliesEchoNoInput(t *testing.T) {
	r := startRun(t)
	marker := strings.Repeat("MARKER", 1000)
	for _, target := range []string{"/a/../" + marker, "//" + marker, "/./" + marker, "/ws/../" + marker} {
		resp := rawGet(t, r.addr, "GET "+target+" HTTP/1.1\r\nHost: "+r.addr+"\r\nConnection: close\r\n\r\n")
		if strings.Contains(resp, "MARKER") || len(resp) > 1000 {
			t.Errorf("GET %.20s…: the reply (%d bytes) quotes the request: %.200q", target, len(resp), resp)
		}
		if !strings.HasPrefix(resp, "404") {
			t.Errorf("GET %.20s… answered %.40q, want 404", target, resp)
		}
	}
}

// TestServeRefusesHugeRequests checks the header limit from outside, on the page routes too:
// Go's default would read 1 MB of headers per request.
func TestServeRefusesHugeRequests(t *testing.T) {
	r := startRun(t)
	upgrade := "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, tc := range []struct {
		name, req, want string
	}{
		{"a 100 KB header on /healthz", "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 100<<10) + "\r\n\r\n", "431"},
		{"a 1 MB target", "GET /healthz?" + strings.Repeat("u", 1<<20) + " HTTP/1.1\r\nHost: h\r\n\r\n", "431"},
		{"a 17 KB header on /ws", "GET /ws HTTP/1.1\r\nHost: h\r\n" + upgrade + "X-Big: " + strings.Repeat("b", 17<<10) + "\r\n\r\n", "431"},
		{"a 17 KB target on /ws", "GET /ws?" + strings.Repeat("u", 17<<10) + " HTTP/1.1\r\nHost: h\r\n" + upgrade + "\r\n", "414"},
		{"a 10 KB cookie on /ws", "GET /ws HTTP/1.1\r\nHost: h\r\n" + upgrade + "Cookie: " + strings.Repeat("c", 10<<10) + "\r\n\r\n", "101"},
	} {
		if resp := rawGet(t, r.addr, tc.req); !strings.HasPrefix(resp, tc.want) {
			t.Errorf("%s: answered %.40q, want %s", tc.name, resp, tc.want)
		}
	}
}

// TestAllowedHostsStopsRebinding plays a DNS-rebinding page against wsgate serve -allowed-hosts.
func TestAllowedHostsStopsRebinding(t *testing.T) {
	r := startRun(t, "-allowed-hosts", "127.0.0.1")
	_, port, _ := net.SplitHostPort(r.addr)
	evil := "evil.example:" + port
	upgrade := "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if resp := rawGet(t, r.addr, "GET /ws HTTP/1.1\r\nHost: "+evil+"\r\nOrigin: http://"+evil+"\r\n"+upgrade+"\r\n"); !strings.HasPrefix(resp, "403") {
		t.Errorf("a rebound page: answered %.40q, want 403", resp)
	}
	dialWS(t, r.addr, "http://"+r.addr).Close() // the server's own page still connects
}
