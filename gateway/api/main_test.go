package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "test-key-0123456789abcdef"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a real hub on broker/memory, its WebSocket server and the API over it, each on its own
// loopback listener.
type env struct {
	t    testing.TB
	hub  *hub.Hub
	node *hubNode
	ws   string // ws:// URL of the WebSocket server
	api  string // http:// URL of the API's server (the base path follows)
	// removes: the broker can remove history. Until it can (broker/memory on branch
	// gate-broker), history_remove answers 404, as documented.
	removes bool
}

// wantStatus is the status an endpoint's valid request gets from the test's hub.
func (e *env) wantStatus(path string) int {
	if strings.HasSuffix(path, "/history_remove") && !e.removes {
		return http.StatusNotFound
	}
	return http.StatusOK
}

func newEnv(t testing.TB, opts *api.Options) *env {
	t.Helper()
	node := &hubNode{}
	ho := &hub.Options{Logger: quiet}
	node.hooks(ho)
	b := memory.New(nil)
	h, err := hub.New(context.Background(), b, ho)
	if err != nil {
		t.Fatal(err)
	}
	node.h = h
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	wsSrv := httptest.NewServer(srv)
	o := api.Options{Keys: []string{testKey}, Logger: quiet}
	if opts != nil {
		o = *opts
		o.Logger = quiet
	}
	handler, err := api.New(node, o)
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(handler)
	t.Cleanup(func() {
		apiSrv.Close()
		_ = srv.Shutdown(context.Background())
		wsSrv.Close()
		_ = h.Close(context.Background())
	})
	_, removes := any(b).(broker.HistoryRemover)
	return &env{t: t, hub: h, node: node, removes: removes, ws: "ws" + strings.TrimPrefix(wsSrv.URL, "http"), api: apiSrv.URL}
}

// answer is an API answer as a client sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d %q: %v", a.status, a.body, err)
	}
}

// errorOf returns the answer's error object, failing when it has none.
func (a answer) errorOf(t testing.TB) protocol.Error {
	t.Helper()
	var b struct{ Error *protocol.Error }
	a.decode(t, &b)
	if b.Error == nil || b.Error.Message == "" {
		t.Fatalf("answer %d %q: no error object", a.status, a.body)
	}
	return *b.Error
}

// do sends a request to the API with the test key (unless header sets Authorization or
// X-API-Key: "" to send none) and a JSON content type.
func (e *env) do(method, path, body string, header map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.api+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "apikey "+testKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) answer {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: answer %d with content type %q: %q", req.Method, req.URL.Path, resp.StatusCode, ct, b)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (e *env) post(path, body string) answer {
	e.t.Helper()
	return e.do(http.MethodPost, path, body, nil)
}

// wsClient is a wsgate.v1 connection on gorilla/websocket, independent of the server's code.
type wsClient struct {
	t  testing.TB
	ws *websocket.Conn
}

// dial connects as user (the test's Connect hook takes the token for the user's name) and
// returns once the connect is answered: the registry knows the connection.
func (e *env) dial(user string) *wsClient {
	e.t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(e.ws, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: e.t, ws: ws}
	c.send(`{"id":1000,"op":"connect","token":"` + user + `"}`)
	c.next(`"id":1000`)
	return c
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads frames until one contains want, skipping pings; it fails after 5 s.
func (c *wsClient) next(want string) string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, p, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", want, err)
		}
		if bytes.Contains(p, []byte(want)) {
			return string(p)
		}
	}
}

// eventually polls cond until it holds, failing after 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newServer(t testing.TB, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
