package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/telemetry"
)

// TestClientPublicationTracedAcrossNodes: a gorilla/websocket client publishes on node A, a
// subscriber on node B gets it over real NATS: one trace holds A's request span, A's broker
// publish span under it, and B's delivery span under that (its parent remote: the traceparent
// crossed in a NATS header), with B's subscriber count. Channel names are not recorded.
func TestClientPublicationTracedAcrossNodes(t *testing.T) {
	url := runNATS(t)
	exp := tracetest.NewInMemoryExporter()
	a := startNode(t, "node-a", natsBroker(t, url), exp, nil, telemetry.Options{})
	b := startNode(t, "node-b", natsBroker(t, url), exp, nil, telemetry.Options{})
	sub := dial(t, b.ws)
	if r := sub.call("subscribe", `,"channel":"user:alice"`); strings.Contains(r, `"error"`) {
		t.Fatal(r)
	}
	pub := dial(t, a.ws)
	if r := pub.call("publish", `,"channel":"user:alice","data":{"text":"hi"}`); strings.Contains(r, `"error"`) {
		t.Fatal(r)
	}
	if p := sub.read(); !strings.Contains(p, `"push":"pub"`) || !strings.Contains(p, `"text":"hi"`) {
		t.Fatalf("subscriber got %s", p)
	}
	s := spans(t, exp, "ws publish", "publish", "deliver")
	req, bp, dl := s["ws publish"], s["publish"], s["deliver"]
	if req.SpanKind != trace.SpanKindServer || req.Parent.IsValid() {
		t.Errorf("request span: kind %v, parent %v: want a server root span", req.SpanKind, req.Parent)
	}
	childOf(t, bp, req, trace.SpanKindProducer)
	childOf(t, dl, bp, trace.SpanKindConsumer)
	if !dl.Parent.IsRemote() {
		t.Error("the delivery span's parent is not remote: the trace context did not come through NATS")
	}
	for name, want := range map[string]string{"ws publish": "node-a", "publish": "node-a", "deliver": "node-b"} {
		if got := resAttr(s[name], "service.instance.id"); got != want {
			t.Errorf("span %q from node %q, want %q", name, got, want)
		}
	}
	if n, q := attr(dl, "wsgate.subscribers").AsInt64(), attr(dl, "wsgate.queued").AsInt64(); n != 1 || q != 1 {
		t.Errorf("delivery span: %d subscribers, %d queued; want 1 and 1", n, q)
	}
	for _, sp := range exp.GetSpans() {
		for _, kv := range sp.Attributes {
			if strings.Contains(kv.Value.Emit(), "alice") {
				t.Errorf("span %q records %s=%s: channel names are off by default", sp.Name, kv.Key, kv.Value.Emit())
			}
		}
	}
}

// TestAPIPublishStartsATrace: an API publish is a server span, the root of its trace or, when
// the caller sent a traceparent, a child of the caller's span; the broker publish and the
// delivery follow under it. With channel names allowed, spans carry the channel.
func TestAPIPublishStartsATrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	n := startNode(t, "solo", memory.New(nil), exp, nil, telemetry.Options{ChannelNames: true})
	sub := dial(t, n.ws)
	sub.call("subscribe", `,"channel":"news"`)

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, parent := range []string{"", caller} {
		exp.Reset()
		req, _ := http.NewRequest(http.MethodPost, n.api+"/publish", strings.NewReader(`{"channel":"news","data":{"n":1}}`))
		req.Header.Set("Content-Type", "application/json")
		if parent != "" {
			req.Header.Set("Traceparent", parent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: %d %s", resp.StatusCode, body)
		}
		sub.read()
		s := spans(t, exp, "API publish", "publish", "deliver")
		ap := s["API publish"]
		if ap.SpanKind != trace.SpanKindServer || attr(ap, "http.response.status_code").AsInt64() != 200 {
			t.Errorf("API span: kind %v, status %v", ap.SpanKind, attr(ap, "http.response.status_code").Emit())
		}
		if parent == "" && ap.Parent.IsValid() {
			t.Errorf("API span without a caller's traceparent has parent %v", ap.Parent)
		}
		if parent != "" && (ap.Parent.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || ap.Parent.SpanID().String() != "b7ad6b7169203331") {
			t.Errorf("API span's parent %v, want the caller's span", ap.Parent)
		}
		childOf(t, s["publish"], ap, trace.SpanKindProducer)
		childOf(t, s["deliver"], s["publish"], trace.SpanKindConsumer)
		if ch := attr(s["publish"], "messaging.destination.name").AsString(); ch != "news" {
			t.Errorf("publish span's channel %q, want news (ChannelNames)", ch)
		}
	}
	// A path that is no endpoint is one name whatever it is.
	exp.Reset()
	resp, err := http.Post(n.api+"/no-such-thing-"+strings.Repeat("x", 50), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans(t, exp, "API other")
}

// TestBackendHookIsASpan: a client's publish with a backend publish hook: the hook call is a
// client span under the request span, and the backend receives its traceparent.
func TestBackendHookIsASpan(t *testing.T) {
	var mu sync.Mutex
	var seen string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Get("Traceparent")
		mu.Unlock()
		_, _ = w.Write([]byte(`{"result":{}}`))
	}))
	defer backend.Close()
	exp := tracetest.NewInMemoryExporter()
	cfg := &gateway.Config{Backend: gateway.Backend{PublishURL: backend.URL}}
	n := startNode(t, "solo", memory.New(nil), exp, cfg, telemetry.Options{})
	c := dial(t, n.ws)
	if r := c.call("publish", `,"channel":"room","data":1`); strings.Contains(r, `"error"`) {
		t.Fatal(r)
	}
	s := spans(t, exp, "ws publish", "backend publish", "publish")
	hook := s["backend publish"]
	childOf(t, hook, s["ws publish"], trace.SpanKindClient)
	childOf(t, s["publish"], s["ws publish"], trace.SpanKindProducer)
	mu.Lock()
	defer mu.Unlock()
	want := "00-" + hook.SpanContext.TraceID().String() + "-" + hook.SpanContext.SpanID().String() + "-01"
	if seen != want {
		t.Errorf("backend got traceparent %q, want the hook span's %q", seen, want)
	}
}

// TestOffByDefault: without an endpoint there is no Tracing (the library's seams stay nil:
// hub.TestTracingOffAllocatesNothingMore holds their cost to nothing); a bad endpoint or ratio
// is refused.
func TestOffByDefault(t *testing.T) {
	ctx := context.Background()
	if tel, err := telemetry.New(ctx, telemetry.Options{SampleRatio: 1}); tel != nil || err != nil {
		t.Fatalf("New without endpoint = %v, %v; want nil, nil", tel, err)
	}
	for _, o := range []telemetry.Options{{Endpoint: "collector:4318", SampleRatio: 1}, {Endpoint: "http://c:4318", SampleRatio: 2}} {
		if tel, err := telemetry.New(ctx, o); err == nil {
			_ = tel.Shutdown(ctx)
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestUnsampledPublicationCarriesNothing: at ratio 0 a client's publication makes no span
// anywhere: it is not sampled, so the broker carries no trace context and no delivery span
// starts.
func TestUnsampledPublicationCarriesNothing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	n := startNode(t, "solo", memory.New(nil), exp, nil, telemetry.Options{SampleRatio: 1e-300})
	sub := dial(t, n.ws)
	sub.call("subscribe", `,"channel":"c"`)
	dial(t, n.ws).call("publish", `,"channel":"c","data":1`)
	sub.read()
	if got := exp.GetSpans(); len(got) != 0 {
		t.Errorf("%d spans exported at ratio ~0: %v", len(got), got[0].Name)
	}
}

// An anonymous caller of the API's public path must not choose what is sampled: the Handler
// extracts its traceparent (flags 01) before the API checks the key, so with a ratio of 0 a
// trusted sampled flag would make every refused request an exported span.
func TestHandlerUnauthenticatedTraceparentDoesNotForceSampling(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.New(context.Background(), telemetry.Options{Exporter: exp, SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no key", http.StatusUnauthorized) })
	h := tr.Handler(refuse, "/api", []string{"/publish"})
	for range 100 {
		r := httptest.NewRequest("POST", "/api/publish", nil)
		r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("sample ratio 0: %d spans exported for 100 refused, unauthenticated requests (the caller's traceparent decided)", n)
	}
}
