package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/internal/testport"
	"github.com/wsgate/wsgate/internal/wstest"
)

// lockedBuffer is stdout or stderr of a client run in the background.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until the buffer holds s.
func (b *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 5s; got:\n%s", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientRun is "wsgate client" running in the background, with its output and result.
type clientRun struct {
	stdout, stderr lockedBuffer
	done           chan error
	cancel         context.CancelFunc // Ctrl-C
}

// startClient runs runClient with args and stdin in the background.
func startClient(t *testing.T, stdin io.Reader, args ...string) *clientRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &clientRun{done: make(chan error, 1), cancel: cancel}
	go func() { r.done <- runClient(ctx, args, stdin, &r.stdout, &r.stderr) }() // owner: the test; waited for by result
	t.Cleanup(cancel)
	return r
}

// result waits for the run to end and returns its error and exit status.
func (r *clientRun) result(t *testing.T) (error, int) {
	t.Helper()
	select {
	case err := <-r.done:
		return err, exitCode(err)
	case <-time.After(15 * time.Second):
		t.Fatalf("client still running after 15s; stderr:\n%s", r.stderr.String())
		return nil, -1
	}
}

// runClientT runs a client to its end and checks its exit status; it returns stdout and stderr.
func runClientT(t *testing.T, stdin string, wantExit int, args ...string) (stdout, stderr string) {
	t.Helper()
	r := startClient(t, strings.NewReader(stdin), args...)
	err, code := r.result(t)
	if code != wantExit {
		t.Fatalf("wsgate client %q: exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", args, code, err, wantExit, r.stdout.String(), r.stderr.String())
	}
	stderr = r.stderr.String()
	if err != nil {
		stderr += "wsgate: " + err.Error() + "\n" // as main prints it
	}
	return r.stdout.String(), stderr
}

// wsURL is the WebSocket endpoint of run's server.
func (r *running) wsURL() string { return "ws://" + r.addr + "/ws" }

// startWsgate serves h with a wsgate.Server on a loopback port and returns its ws:// URL.
func startWsgate(t *testing.T, h wsgate.Handler, cfg *wsgate.Config) string {
	_, url := wstest.Wsgate(t, h, cfg)
	return url
}

// replyWith is a wsgate handler answering every message with f(conn, message).
type replyWith func(c *wsgate.Conn, m wsgate.Message) string

func (f replyWith) OnOpen(*wsgate.Conn)       {}
func (replyWith) OnClose(*wsgate.Conn, error) {}
func (f replyWith) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	_ = c.Send(wsgate.Text, []byte(f(c, m)))
}

func TestClientPipe(t *testing.T) {
	r := startRun(t)
	out, errs := runClientT(t, "a\nb\r\n\nc", 0, r.wsURL())
	if want := "a done\nb done\n done\nc done\n"; out != want {
		t.Fatalf("stdout %q, want %q (every line, the empty one and the last without newline)", out, want)
	}
	if !strings.Contains(errs, "connected: "+r.wsURL()) || !strings.Contains(errs, "closed: 1000") || strings.Contains(errs, "> ") {
		t.Fatalf("stderr %q: want connected and closed status lines, no prompt", errs)
	}
	if out, errs := runClientT(t, "x\n", 0, "-q", r.wsURL()); out != "x done\n" || errs != "" {
		t.Fatalf("-q: stdout %q, stderr %q; want the reply and nothing on stderr", out, errs)
	}
}

func TestClientExec(t *testing.T) {
	r := startRun(t)
	if out, _ := runClientT(t, "ignored\n", 0, r.wsURL(), "-x", "Hello!"); out != "Hello! done\n" {
		t.Fatalf("-x Hello!: stdout %q", out)
	}
	if out, _ := runClientT(t, "hi\n", 0, r.wsURL(), "-x", "-"); out != "hi done\n" {
		t.Fatalf("echo hi | wsgate client URL -x -: stdout %q", out)
	}
	if out, _ := runClientT(t, "two\nlines\n", 0, "-x", "-", r.wsURL()); out != "two\nlines done\n" {
		t.Fatalf("-x - with two lines: stdout %q, want one message", out)
	}
	_, errs := runClientT(t, "\xff\n", 2, "-x", "-", r.wsURL())
	if !strings.Contains(errs, "-binary") {
		t.Fatalf("-x - with invalid UTF-8: %q, want a hint at -binary", errs)
	}
}

func TestClientBinary(t *testing.T) {
	r := startRun(t)
	if out, _ := runClientT(t, "", 0, "-binary", "-x", "hey", r.wsURL()); out != "[binary hex] 68657920646f6e65\n" {
		t.Fatalf("hex: %q", out)
	}
	if out, _ := runClientT(t, "", 0, "-binary", "-base64", "-x", "hey", r.wsURL()); out != "[binary base64] aGV5IGRvbmU=\n" {
		t.Fatalf("base64: %q", out)
	}
	if out, _ := runClientT(t, "\xff\x00\n", 0, "-binary", r.wsURL()); out != "[binary hex] ff0020646f6e65\n" {
		t.Fatalf("binary lines: %q", out)
	}
	out, errs := runClientT(t, "\xff\nok\n", 0, r.wsURL())
	if out != "ok done\n" || !strings.Contains(errs, "line not sent: not valid UTF-8") {
		t.Fatalf("invalid UTF-8 line in text mode: stdout %q, stderr %q", out, errs)
	}
}

func TestClientHeadersAndOrigin(t *testing.T) {
	url := startWsgate(t, replyWith(func(c *wsgate.Conn, _ wsgate.Message) string {
		return strings.Join(c.Header().Values("X-Token"), ",") + " from " + c.Header().Get("Origin")
	}), &wsgate.Config{KeepHeaders: []string{"X-Token", "Origin"}})
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
	out, _ := runClientT(t, "", 0, "-H", "X-Token: abc", "-H", "x-token:def", "-origin", "http://"+host, "-x", "hi", url)
	if want := "abc,def from http://" + host + "\n"; out != want {
		t.Fatalf("stdout %q, want %q", out, want)
	}
	_, errs := runClientT(t, "", 1, "-origin", "https://evil.example", "-x", "hi", url)
	if !strings.Contains(errs, "handshake failed: 403 Forbidden: websocket: origin not allowed") {
		t.Fatalf("foreign origin: stderr %q, want the status and the reason", errs)
	}
}

func TestClientSubprotocol(t *testing.T) {
	url := startWsgate(t, replyWith(func(c *wsgate.Conn, _ wsgate.Message) string { return "speaking " + c.Subprotocol() }),
		&wsgate.Config{Subprotocols: []string{"chat", "v2"}})
	out, errs := runClientT(t, "", 0, "-subprotocol", "x,v2", "-subprotocol", "chat", "-x", "hi", url)
	if out != "speaking chat\n" || !strings.Contains(errs, "subprotocol: chat") {
		t.Fatalf("stdout %q, stderr %q", out, errs)
	}
	if out, errs := runClientT(t, "", 0, "-subprotocol", "mqtt", "-x", "hi", url); out != "speaking \n" || strings.Contains(errs, "subprotocol:") {
		t.Fatalf("no subprotocol in common: stdout %q, stderr %q", out, errs)
	}
}

// The server's 1001 says come back later: exit status 5, not 3, so that a script can retry.
func TestClientServerShutdownExits5(t *testing.T) {
	r := startRun(t)
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, r.wsURL())
	c.stderr.waitFor(t, "connected")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	err, code := c.result(t)
	if code != exitTryAgain || err.Error() != "closed: 1001 server shutting down" {
		t.Fatalf("exit %d, %v; want 5, closed: 1001 server shutting down", code, err)
	}
}

func TestClientServerCloses(t *testing.T) {
	url := startWsgate(t, wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		switch string(m.Data) {
		case "normal":
			_ = c.Close(wsgate.CloseNormal, "bye")
		case "custom":
			_ = c.Close(4000, "custom reason")
		case "slow":
			_ = c.Close(wsgate.CloseTryAgainLater, "slow consumer")
		case "drop":
			c.CloseNow()
		}
	}), nil)
	for _, tc := range []struct {
		args []string
		exit int
		says string
	}{
		{[]string{"-x", "normal", url}, 3, "closed before the reply: 1000 bye"},
		{[]string{"-x", "custom", url}, 3, "wsgate: closed: 4000 custom reason"},
		{[]string{"-x", "slow", url}, 5, "wsgate: closed: 1013 slow consumer"},
		{[]string{"-x", "drop", url}, 1, "connection lost: 1006"},
	} {
		if _, errs := runClientT(t, "", tc.exit, tc.args...); !strings.Contains(errs, tc.says) {
			t.Errorf("%q: stderr %q, want %q", tc.args, errs, tc.says)
		}
	}

	// Lines: the server's normal close ends the client without waiting for stdin's end.
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, url)
	if _, err := io.WriteString(w, "normal\n"); err != nil {
		t.Fatal(err)
	}
	if err, code := c.result(t); code != 0 || !strings.Contains(c.stderr.String(), "closed: 1000 bye") {
		t.Fatalf("exit %d (%v), stderr %q; want 0 and closed: 1000 bye", code, err, c.stderr.String())
	}
}

func TestClientExecTimeoutExits4(t *testing.T) {
	url := startWsgate(t, wsgate.HandlerFunc(func(*wsgate.Conn, wsgate.Message) {}), nil) // never answers
	start := time.Now()
	_, errs := runClientT(t, "", exitNoReply, "-x", "anyone?", "-timeout", "100ms", url)
	if !strings.Contains(errs, "no reply within 100ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("stderr %q after %v", errs, time.Since(start))
	}
}

func TestClientCtrlCClosesWith1000(t *testing.T) {
	closed := make(chan error, 1)
	url := startWsgate(t, onClose(func(err error) { closed <- err }), nil)
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, "-close-reason", "see you", url)
	c.stderr.waitFor(t, "connected")
	c.cancel()
	if err, code := c.result(t); code != 0 {
		t.Fatalf("exit %d (%v), want 0", code, err)
	}
	var ce *wsgate.CloseError
	if err := <-closed; !errors.As(err, &ce) || ce.Code != 1000 || ce.Reason != "see you" || !ce.Remote {
		t.Fatalf("server saw %v, want 1000 \"see you\" from the client", err)
	}
	if !strings.Contains(c.stderr.String(), "closed: 1000 see you") {
		t.Fatalf("stderr %q", c.stderr.String())
	}
}

// onClose is a handler that reports each connection's end.
type onClose func(error)

func (onClose) OnOpen(*wsgate.Conn)                    {}
func (onClose) OnMessage(*wsgate.Conn, wsgate.Message) {}
func (f onClose) OnClose(_ *wsgate.Conn, err error)    { f(err) }

func TestClientCloseCode(t *testing.T) {
	closed := make(chan error, 1)
	url := startWsgate(t, onClose(func(err error) { closed <- err }), nil)
	if _, errs := runClientT(t, "", 0, "-close-code", "4001", "-close-reason", "done here", url); !strings.Contains(errs, "closed: 4001 done here") {
		t.Fatalf("stderr %q", errs)
	}
	if err := <-closed; wsgate.CloseStatus(err) != 4001 {
		t.Fatalf("server saw %v", err)
	}
}

func TestClientConnectFailureExits1(t *testing.T) {
	r := startRun(t)
	addr := r.addr
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, errs := runClientT(t, "", 1, "-x", "hi", "ws://"+addr+"/ws"); !strings.Contains(errs, "cannot connect to ws://"+addr+"/ws") {
		t.Fatalf("stderr %q", errs)
	}
}

func TestClientUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-bogus", "ws://127.0.0.1:1/ws"},
		{"-sub", "chat", "-x", "hi", "ws://127.0.0.1:1/a", "ws://127.0.0.1:1/b"},
		{"-sub", "no spaces", "ws://127.0.0.1:1/ws"},
		{"ws://127.0.0.1:1/a", "http://127.0.0.1:1/b"},
		{"http://127.0.0.1:1/ws"},
		{"-close-code", "1005", "ws://127.0.0.1:1/ws"},
		{"-close-reason", strings.Repeat("x", 124), "ws://127.0.0.1:1/ws"},
		{"-H", "no colon", "ws://127.0.0.1:1/ws"},
		{"-H", "Sec-WebSocket-Protocol: chat", "ws://127.0.0.1:1/ws"},
		{"-subprotocol", "a b", "ws://127.0.0.1:1/ws"},
		{"-timeout", "0s", "ws://127.0.0.1:1/ws"},
	} {
		runClientT(t, "", 2, args...)
	}

	// Through run, as the binary calls it.
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"client", "-h"}, noEnv, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := stdout.String()
	for _, want := range []string{"Usage: wsgate client [flags] URL [URL...]", "-sub channel", "Exit status:", "  3  the server closed", "-subprotocol", "-close-code code"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if err := run(context.Background(), []string{"client"}, noEnv, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("run client without URL: %v (exit %d)", err, exitCode(err))
	}
}

// A handshake shed with 503 and Retry-After says come back later: exit status 5, with the wait,
// not 1. The server admits one upgrade a second: the first client gets in, the second, at once
// after, is turned away.
func TestClientShedHandshakeExits5(t *testing.T) {
	url := startWsgate(t, replyWith(func(*wsgate.Conn, wsgate.Message) string { return "in" }),
		&wsgate.Config{MaxHandshakeRate: 1})
	if out, _ := runClientT(t, "", 0, "-x", "hi", url); out != "in\n" {
		t.Fatalf("first client: stdout %q", out)
	}
	_, errs := runClientT(t, "", exitTryAgain, "-x", "hi", url)
	if !strings.Contains(errs, "handshake failed: 503 Service Unavailable") || !strings.Contains(errs, "(the server asks to retry after 1s)") {
		t.Fatalf("shed client: stderr %q, want the 503 and the wait", errs)
	}
}

// With several URLs, exit status 5 only when every server asked to come back later (the shortest
// wait is printed); a server that refuses the connection outright makes it 1.
func TestClientSeveralShedURLsExit5(t *testing.T) {
	shedding := func(wait string) string {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", wait)
			http.Error(w, "shedding load", http.StatusServiceUnavailable)
		}))
		t.Cleanup(hs.Close)
		return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	}
	a, b := shedding("7"), shedding("3")
	_, errs := runClientT(t, "", exitTryAgain, "-x", "hi", a, b)
	if !strings.Contains(errs, "cannot connect to any of the 2 URLs") || !strings.Contains(errs, "(the servers ask to retry after 3s)") {
		t.Fatalf("two shedding servers: stderr %q, want both refusals and the shorter wait", errs)
	}
	refused := "ws://" + testport.Addr(t) + "/ws"
	_, errs = runClientT(t, "", 1, "-x", "hi", a, refused)
	if !strings.Contains(errs, "refused") || strings.Contains(errs, "ask to retry") {
		t.Fatalf("a shedding server and a refused port: stderr %q, want exit 1 without a wait", errs)
	}
}
