package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestMain fails the package if a test leaves a goroutine behind: a call must not outlive its
// context, and the Proxy's idle connections go with CloseIdleConnections.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call is one request as the backend received it.
type call struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

// backend is a real HTTP backend on loopback that records its calls and answers with answer.
type backend struct {
	URL string
	mu  sync.Mutex
	got []call
}

func newBackend(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *backend {
	t.Helper()
	b := &backend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		c := call{Path: r.URL.Path, Header: r.Header.Clone()}
		if err := json.Unmarshal(raw, &c.Body); err != nil || r.Method != http.MethodPost {
			t.Errorf("backend: %s with a body that is not a JSON object (%v): %q", r.Method, err, raw)
		}
		b.mu.Lock()
		b.got = append(b.got, c)
		n := len(b.got)
		b.mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// answering answers every call with body, status 200.
func answering(body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { _, _ = io.WriteString(w, body) }
}

func (b *backend) calls() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

func (b *backend) last(t *testing.T) call {
	t.Helper()
	c := b.calls()
	if len(c) == 0 {
		t.Fatal("the backend got no call")
	}
	return c[len(c)-1]
}

func newProxy(t *testing.T, cfg proxy.Config) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// all configures every call to url, with the paths /connect, /refresh, ...
func all(url string) proxy.Config {
	return proxy.Config{
		Connect:   proxy.Endpoint{URL: url + "/connect"},
		Refresh:   proxy.Endpoint{URL: url + "/refresh"},
		Subscribe: proxy.Endpoint{URL: url + "/subscribe"},
		Publish:   proxy.Endpoint{URL: url + "/publish"},
		RPC:       proxy.Endpoint{URL: url + "/rpc"},
	}
}

const (
	cookie = "sid=s3cr3t-session"
	token  = "tok.s3cr3t.sig"
)

func client(user string) proxy.Client {
	return proxy.Client{Name: "c7", Transport: "wsgate.v1", Remote: "203.0.113.9:51234", User: user,
		Header: http.Header{"Cookie": {cookie}, "Origin": {"https://app.example"}, "User-Agent": {"test-browser/1"}}}
}

// protoErr returns the *protocol.Error err carries; it fails the test when there is none.
func protoErr(t *testing.T, err error) *protocol.Error {
	t.Helper()
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		t.Fatalf("want a *protocol.Error, got %T %v", err, err)
	}
	return perr
}

func wantCode(t *testing.T, err error, code protocol.Code) *proxy.Error {
	t.Helper()
	if perr := protoErr(t, err); perr.Code != code {
		t.Fatalf("want code %d, got %v", code, err)
	}
	var pe *proxy.Error
	if !errors.As(err, &pe) {
		t.Fatalf("want a *proxy.Error, got %T", err)
	}
	return pe
}

func TestConnect(t *testing.T) {
	b := newBackend(t, answering(`{"result":{"user":"alice","info":{ "name" : "Alice" },"expire_at":1767225600,"channels":["#alice","news","news"]}}`))
	p := newProxy(t, all(b.URL))
	id, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client(""), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice" || string(id.Info) != `{"name":"Alice"}` || !id.ExpiresAt.Equal(time.Unix(1767225600, 0)) ||
		!slices.Equal(id.Channels, []string{"#alice", "news"}) {
		t.Fatalf("identity %+v", id)
	}
	c := b.last(t)
	if c.Path != "/connect" || c.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("call %s with Content-Type %q", c.Path, c.Header.Get("Content-Type"))
	}
	want := map[string]any{"client": "c7", "transport": "wsgate.v1", "remote": "203.0.113.9:51234", "token": token,
		"headers": map[string]any{"Cookie": cookie, "Origin": "https://app.example", "User-Agent": "test-browser/1"}}
	if !jsonEqual(c.Body, want) {
		t.Fatalf("body %v\nwant %v", c.Body, want)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestConnectExpiresInAndAnonymous(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			_, _ = io.WriteString(w, `{"result":{"user":"bob","expires_in":60,"info":null}}`)
			return
		}
		_, _ = io.WriteString(w, `{"result":{}}`)
	})
	p := newProxy(t, all(b.URL))
	id, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client("")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(id.ExpiresAt); d < 55*time.Second || d > 61*time.Second || id.Info != nil {
		t.Fatalf("expires in %v, info %q", d, id.Info)
	}
	if _, ok := b.last(t).Body["token"]; ok {
		t.Fatal("an empty token was sent")
	}
	id, err = p.Connect(context.Background(), proxy.ConnectRequest{Client: client("")})
	if err != nil || id.User != "" || !id.ExpiresAt.IsZero() || id.Channels != nil {
		t.Fatalf("anonymous connect: %+v, %v", id, err)
	}
}

func TestRefresh(t *testing.T) {
	answers := []string{
		`{"result":{"expires_in":600}}`,
		`{"result":{"user":"alice","expire_at":1767225600,"info":{"name":"Alice B."}}}`,
		`{"result":{"user":"mallory","expires_in":600}}`,
		`{"result":{"expired":true}}`,
	}
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, n int) { _, _ = io.WriteString(w, answers[n-1]) })
	p := newProxy(t, all(b.URL))
	ctx := context.Background()
	r := proxy.RefreshRequest{Client: client("alice"), Token: token}
	id, err := p.Refresh(ctx, r)
	if err != nil || id.User != "alice" || time.Until(id.ExpiresAt) < 590*time.Second {
		t.Fatalf("refresh without user: %+v, %v", id, err)
	}
	if c := b.last(t); c.Path != "/refresh" || c.Body["user"] != "alice" || c.Body["token"] != token {
		t.Fatalf("refresh call %s %v", c.Path, c.Body)
	}
	if id, err = p.Refresh(ctx, r); err != nil || id.User != "alice" || string(id.Info) != `{"name":"Alice B."}` {
		t.Fatalf("refresh with user: %+v, %v", id, err)
	}
	_, err = p.Refresh(ctx, r)
	if pe := wantCode(t, err, protocol.CodeInternal); !strings.Contains(pe.Error(), "another user") {
		t.Fatalf("a refresh for another user: %v", err)
	}
	_, err = p.Refresh(ctx, r)
	if pe := wantCode(t, err, protocol.CodeTokenExpired); pe.Disconnect != nil {
		t.Fatal("expired: the connection should lapse, not be closed now")
	}
}

func TestSubscribe(t *testing.T) {
	b := newBackend(t, answering(`{"result":{}}`))
	p := newProxy(t, all(b.URL))
	err := p.Subscribe(context.Background(), proxy.SubscribeRequest{Client: client("alice"), Channel: "chat:lobby", Token: "chantok"})
	if err != nil {
		t.Fatal(err)
	}
	c := b.last(t)
	if c.Path != "/subscribe" || c.Body["channel"] != "chat:lobby" || c.Body["token"] != "chantok" || c.Body["user"] != "alice" {
		t.Fatalf("subscribe call %s %v", c.Path, c.Body)
	}
}

func TestPublish(t *testing.T) {
	answers := []string{`{"result":{}}`, "{\"result\":{\"data\":{\n  \"text\": \"hi\",\n  \"by\": \"alice\"\n}}}", `{"result":{"data":null}}`}
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, n int) { _, _ = io.WriteString(w, answers[n-1]) })
	p := newProxy(t, all(b.URL))
	r := proxy.PublishRequest{Client: client("alice"), Channel: "chat:lobby", Data: json.RawMessage(`{"text":"hi"}`)}
	data, err := p.Publish(context.Background(), r)
	if err != nil || data != nil {
		t.Fatalf("unchanged: %q, %v", data, err)
	}
	c := b.last(t)
	if c.Path != "/publish" || c.Body["channel"] != "chat:lobby" || !jsonEqual(c.Body["data"], map[string]any{"text": "hi"}) {
		t.Fatalf("publish call %s %v", c.Path, c.Body)
	}
	if data, err = p.Publish(context.Background(), r); err != nil || string(data) != `{"text":"hi","by":"alice"}` {
		t.Fatalf("replaced: %q, %v", data, err)
	}
	if data, err = p.Publish(context.Background(), r); err != nil || string(data) != `null` {
		t.Fatalf("replaced by null: %q, %v", data, err)
	}
}

func TestRPC(t *testing.T) {
	answers := []string{`{"result":{"data":{"name":"Alice"}}}`, `{"result":{}}`}
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, n int) { _, _ = io.WriteString(w, answers[n-1]) })
	p := newProxy(t, all(b.URL))
	r := proxy.RPCRequest{Client: client("alice"), Method: "getProfile", Data: json.RawMessage(`{"id":1}`)}
	data, err := p.RPC(context.Background(), r)
	if err != nil || string(data) != `{"name":"Alice"}` {
		t.Fatalf("rpc: %q, %v", data, err)
	}
	if c := b.last(t); c.Path != "/rpc" || c.Body["method"] != "getProfile" || !jsonEqual(c.Body["data"], map[string]any{"id": 1}) {
		t.Fatalf("rpc call %s %v", c.Path, c.Body)
	}
	if data, err = p.RPC(context.Background(), r); err != nil || string(data) != "null" {
		t.Fatalf("rpc without data: %q, %v", data, err)
	}
}

// TestNotConfigured: a call without a URL answers 112 and makes no request.
func TestNotConfigured(t *testing.T) {
	p := newProxy(t, proxy.Config{})
	_, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client("")})
	if pe := wantCode(t, err, protocol.CodeNotAvailable); pe.Attempts != 0 {
		t.Fatalf("attempts %d", pe.Attempts)
	}
	wantCode(t, p.Subscribe(context.Background(), proxy.SubscribeRequest{Client: client(""), Channel: "a"}), protocol.CodeNotAvailable)
}

func TestHeaders(t *testing.T) {
	b := newBackend(t, answering(`{"result":{}}`))
	cfg := all(b.URL)
	cfg.Headers = http.Header{"X-Backend-Secret": {"b4ckend"}, "Authorization": {"Bearer wsgate-secret"}}
	p := newProxy(t, cfg)
	cl := client("")
	cl.Header = http.Header{
		"Cookie":            {"a=1", "b=2"},
		"Authorization":     {"Bearer client-token"},
		"X-Forwarded-For":   {"198.51.100.1", "10.0.0.1"},
		"X-Real-Ip":         {"198.51.100.1"},       // named by Connection below: hop-by-hop
		"Connection":        {"Upgrade, X-Real-Ip"}, // never forwarded
		"Upgrade":           {"websocket"},          // never forwarded
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		"X-Custom":          {"not in ForwardHeaders"},
		"Origin":            {"https://evil.example\r\nX-Injected: 1"}, // a hand-made Header; dropped
	}
	if _, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: cl}); err != nil {
		t.Fatal(err)
	}
	c := b.last(t)
	h := c.Header
	if got := h.Values("Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Fatalf("Cookie %q", got)
	}
	if h.Get("X-Forwarded-For") != "198.51.100.1" || h.Get("X-Backend-Secret") != "b4ckend" || h.Get("Authorization") != "Bearer wsgate-secret" {
		t.Fatalf("headers %v", h)
	}
	for _, name := range []string{"X-Real-Ip", "Upgrade", "Sec-Websocket-Key", "X-Custom", "Origin", "X-Injected"} {
		if h.Get(name) != "" {
			t.Errorf("%s forwarded: %q", name, h.Get(name))
		}
	}
	if h.Get("Connection") == "Upgrade, X-Real-Ip" {
		t.Error("the client's Connection header forwarded")
	}
	want := map[string]any{"Authorization": "Bearer client-token", "Cookie": "a=1; b=2", "X-Forwarded-For": "198.51.100.1, 10.0.0.1"}
	if !jsonEqual(c.Body["headers"], want) {
		t.Fatalf("body headers %v\nwant %v", c.Body["headers"], want)
	}
	if _, ok := c.Body["headers"].(map[string]any)["X-Backend-Secret"]; ok {
		t.Fatal("a static header in the body")
	}

	// An empty list forwards none.
	cfg.ForwardHeaders = []string{}
	p = newProxy(t, cfg)
	if _, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: cl}); err != nil {
		t.Fatal(err)
	}
	if c := b.last(t); c.Header.Get("Cookie") != "" || c.Body["headers"] != nil {
		t.Fatalf("ForwardHeaders empty: %v %v", c.Header, c.Body["headers"])
	}
}

// TestConfigRefused: New refuses what cannot work, or would forward what must not be.
func TestConfigRefused(t *testing.T) {
	for name, cfg := range map[string]proxy.Config{
		"forward Connection":   {ForwardHeaders: []string{"Connection"}},
		"forward Upgrade":      {ForwardHeaders: []string{"upgrade"}},
		"forward Sec-WS-Key":   {ForwardHeaders: []string{"Sec-WebSocket-Key"}},
		"forward Content-Len":  {ForwardHeaders: []string{"Content-Length"}},
		"forward Proxy-Auth":   {ForwardHeaders: []string{"Proxy-Authorization"}},
		"forward a bad name":   {ForwardHeaders: []string{"X Bad"}},
		"static Host":          {Headers: http.Header{"Host": {"x"}}},
		"static CRLF":          {Headers: http.Header{"X-Secret": {"a\r\nX-Evil: 1"}}},
		"not http":             {Connect: proxy.Endpoint{URL: "ftp://backend/connect"}},
		"bad URL":              {Connect: proxy.Endpoint{URL: "http://[::1"}},
		"negative timeout":     {RPC: proxy.Endpoint{URL: "http://x", Timeout: -1}},
		"negative max answer":  {MaxResponseBytes: -1},
		"negative max channel": {MaxChannels: -1},
	} {
		if _, err := proxy.New(cfg); !errors.Is(err, proxy.ErrConfig) {
			t.Errorf("%s: want ErrConfig, got %v", name, err)
		}
	}
}

// The hub's hooks take an Identity; a proxy's answers are ready for them.
var _ func(context.Context, proxy.ConnectRequest) (*hub.Identity, error) = (*proxy.Proxy)(nil).Connect

// TestImportFence: the package stands on protocol, hub and the root package only (plan: gate-
// proxy), not on the binary, the other gateway packages or a broker's client library.
func TestImportFence(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/wsgate/wsgate/cmd") || strings.HasPrefix(p, "github.com/nats-io/") ||
			strings.HasPrefix(p, "github.com/wsgate/wsgate/gateway/") && p != "github.com/wsgate/wsgate/gateway/proxy" {
			t.Errorf("gateway/proxy depends on %s", p)
		}
	}
}
