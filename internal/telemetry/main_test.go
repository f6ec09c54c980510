package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/gateway/events"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/telemetry"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Tracing implements every seam of the library.
var (
	_ hub.Tracer    = (*telemetry.Tracing)(nil)
	_ proxy.Tracer  = (*telemetry.Tracing)(nil)
	_ events.Tracer = (*telemetry.Tracing)(nil)
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// node is a wsgate node as the binary builds it: a gateway before a hub on b, traced by its
// own Tracing (its spans to exp), its WebSocket endpoint and its backend API served on loopback.
type node struct {
	ws, api string // ws:// and http://.../api
	tel     *telemetry.Tracing
}

func startNode(t *testing.T, name string, b broker.Broker, exp *tracetest.InMemoryExporter, cfg *gateway.Config, opts telemetry.Options) *node {
	t.Helper()
	ctx := context.Background()
	opts.Node, opts.Exporter = name, exp
	if opts.SampleRatio == 0 {
		opts.SampleRatio = 1
	}
	tel, err := telemetry.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		cfg = &gateway.Config{}
	}
	gw, err := gateway.New(ctx, cfg, gateway.Deps{Logger: quiet, Tracer: tel})
	if err != nil {
		t.Fatal(err)
	}
	ho := hub.Options{Logger: quiet, PingInterval: -1, Tracer: tel}
	gw.HubOptions(&ho)
	h, err := hub.New(ctx, b, &ho)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Bind(h); err != nil {
		t.Fatal(err)
	}
	srv, err := wsgate.NewServer(gw.Handler(h.Handler(nil)), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Admit: gw.Admit, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ah, err := api.New(gw.Node(), api.Options{Insecure: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/api/", tel.Handler(ah, api.DefaultBasePath, api.Endpoints()))
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
		_ = gw.Close(ctx)
		_ = h.Close(ctx)
		_ = tel.Shutdown(ctx)
	})
	return &node{ws: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", api: hs.URL + "/api", tel: tel}
}

// v1 is a wsgate.v1 client on gorilla/websocket, independent of the server's code.
type v1 struct {
	t  *testing.T
	ws *websocket.Conn
	id int
}

func dial(t *testing.T, url string) *v1 {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &v1{t: t, ws: ws}
}

// call sends a request and returns its reply frame, skipping pushes.
func (c *v1) call(op, fields string) string {
	c.t.Helper()
	c.id++
	if err := c.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"id":%d,"op":%q%s}`, c.id, op, fields)); err != nil {
		c.t.Fatal(err)
	}
	for {
		m := c.read()
		if strings.Contains(m, fmt.Sprintf(`"id":%d,`, c.id)) || strings.Contains(m, fmt.Sprintf(`"id":%d}`, c.id)) {
			return m
		}
	}
}

// read returns the next frame.
func (c *v1) read() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, p, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatal(err)
	}
	return string(p)
}

// spans waits until exp holds the spans named, one each (others may be there too), and
// returns them by name.
func spans(t *testing.T, exp *tracetest.InMemoryExporter, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]tracetest.SpanStub{}
		count := map[string]int{}
		for _, s := range exp.GetSpans() {
			got[s.Name] = s
			count[s.Name]++
		}
		all := true
		for _, n := range names {
			if count[n] != 1 {
				all = false
			}
		}
		if all {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans %v, want one each of %q", count, names)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// childOf fails unless child is a child of parent, of kind k.
func childOf(t *testing.T, child, parent tracetest.SpanStub, k trace.SpanKind) {
	t.Helper()
	if child.SpanKind != k {
		t.Errorf("span %q is a %v, want %v", child.Name, child.SpanKind, k)
	}
	if child.SpanContext.TraceID() != parent.SpanContext.TraceID() || child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("span %q (trace %s, parent %s) is not a child of %q (trace %s, span %s)", child.Name,
			child.SpanContext.TraceID(), child.Parent.SpanID(), parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

// attr returns the span's attribute key, or an invalid value.
func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func resAttr(s tracetest.SpanStub, key string) string {
	v, _ := s.Resource.Set().Value(attribute.Key(key))
	return v.AsString()
}

// runNATS starts a NATS server with JetStream on a free loopback port, for the test.
func runNATS(t *testing.T) string {
	t.Helper()
	// Port -1: the server listens on a port of the kernel's choosing, and holds it from then on
	// (a port found free and closed first could be taken before the server binds it).
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start() // owner: the test; shut down by its cleanup
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

func natsBroker(t *testing.T, url string) broker.Broker {
	t.Helper()
	b, err := natsbroker.New(&natsbroker.Options{URL: url, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
