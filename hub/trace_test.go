package hub_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// recTracer records the hub's Tracer calls as lines, and gives each publication the trace
// context "tp-N" (N counting from 1), or none when sample is false.
type recTracer struct {
	sample bool
	mu     sync.Mutex
	calls  []string
	n      int
}

type spanKey struct{}

func (r *recTracer) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recTracer) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recTracer) StartRequest(ctx context.Context, op, channel string) (context.Context, func(error)) {
	r.add("request " + op + " " + channel)
	return context.WithValue(ctx, spanKey{}, "request"), func(err error) { r.add(fmt.Sprintf("request end %v", err != nil)) }
}

func (r *recTracer) StartPublish(ctx context.Context, channel string) (context.Context, string, func(error)) {
	parent, _ := ctx.Value(spanKey{}).(string)
	r.mu.Lock()
	r.n++
	trace := ""
	if r.sample {
		trace = fmt.Sprintf("tp-%d", r.n)
	}
	r.mu.Unlock()
	r.add(fmt.Sprintf("publish %s parent=%q trace=%q", channel, parent, trace))
	return ctx, trace, func(err error) { r.add(fmt.Sprintf("publish end %v", err != nil)) }
}

func (r *recTracer) StartDelivery(channel, trace string, offset uint64) func(int, int) {
	return func(subs, queued int) {
		r.add(fmt.Sprintf("deliver %s %s offset=%d subscribers=%d queued=%d", channel, trace, offset, subs, queued))
	}
}

// waitLines waits until the tracer recorded want, in order.
func waitLines(t *testing.T, r *recTracer, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.lines()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracer calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTracerFollowsAPublication: a client's publish is a request span, its broker publication
// a child of it whose trace context the broker carries to the delivery, which counts the
// subscribers; a server-side Publish has no request span; a refusal ends the request span with
// an error and publishes nothing; an unsampled publication has no delivery span.
func TestTracerFollowsAPublication(t *testing.T) {
	tr := &recTracer{sample: true}
	e := start(t, &hub.Options{Tracer: tr, MaxDataSize: 100}, nil)
	sub, pub := e.dial(t), e.dial(t)
	sub.call("subscribe", `,"channel":"room"`, nil)
	if r := pub.call("publish", `,"channel":"room","data":{"a":1}`, nil); r["error"] != nil {
		t.Fatalf("publish: %v", strMap(r))
	}
	sub.push("pub")
	waitLines(t, tr, []string{
		"request publish room",
		`publish room parent="request" trace="tp-1"`,
		"deliver room tp-1 offset=1 subscribers=1 queued=1",
		"publish end false",
		"request end false",
	})
	tr.mu.Lock()
	tr.calls = nil
	tr.mu.Unlock()

	if _, err := e.hub.Publish(context.Background(), "room", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	sub.push("pub")
	r := pub.call("publish", `,"channel":"room","data":"`+strings.Repeat("x", 200)+`"`, nil)
	if errCode(t, r) != protocol.CodeTooLarge {
		t.Fatalf("oversized publish: %v", strMap(r))
	}
	tr.mu.Lock()
	tr.sample = false
	tr.mu.Unlock()
	if r := pub.call("publish", `,"channel":"room","data":3`, nil); r["error"] != nil {
		t.Fatalf("publish: %v", strMap(r))
	}
	if p := sub.push("pub"); string(p["data"]) != "3" {
		t.Fatalf("push: %v", strMap(p))
	}
	waitLines(t, tr, []string{
		`publish room parent="" trace="tp-2"`,
		"deliver room tp-2 offset=2 subscribers=1 queued=1",
		"publish end false",
		"request publish room",
		"request end true",
		"request publish room",
		`publish room parent="request" trace=""`,
		"publish end false",
		"request end false",
	})
}

// TestTracingOffAllocatesNothingMore: with no Tracer, Hub.Publish allocates what the broker's
// Publish does and the copy of the data it makes, nothing more: the tracing seam costs nothing
// when off. (BenchmarkPublishFanOut measures the delivery side.)
func TestTracingOffAllocatesNothingMore(t *testing.T) {
	b := memory.New(nil)
	e := startOn(t, b, &hub.Options{}, nil)
	ctx := context.Background()
	data := []byte(`{"text":"hello"}`)
	viaHub := testing.AllocsPerRun(200, func() {
		if _, err := e.hub.Publish(ctx, "quiet", data); err != nil {
			t.Fatal(err)
		}
	})
	direct := testing.AllocsPerRun(200, func() {
		if _, err := b.Publish(ctx, "quiet", append([]byte(nil), data...)); err != nil {
			t.Fatal(err)
		}
	})
	if viaHub != direct {
		t.Errorf("Hub.Publish allocates %v times a publication, the broker and the copy %v", viaHub, direct)
	}
}
