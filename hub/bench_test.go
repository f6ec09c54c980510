package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
)

// BenchmarkPublish and BenchmarkPresenceChurn are in bench/hubcmp: they use the public API only,
// so that they run in an older checkout too, beside this one.

// BenchmarkHistoryBig: a history request for 100 publications of 60 KB, answered with one page
// that fits the reply budget (it encoded 6 MB to drop it, before).
func BenchmarkHistoryBig(b *testing.B) {
	e := startOn(b, memory.New(nil), &hub.Options{RequestRate: -1}, nil)
	data := []byte(`"` + strings.Repeat("y", 60<<10) + `"`)
	for range 100 {
		if _, err := e.hub.Publish(context.Background(), "big", data); err != nil {
			b.Fatal(err)
		}
	}
	c := e.dial(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.call("history", `,"channel":"big","limit":100`, nil)
	}
}

// BenchmarkPublishFanOut: a server-side publication delivered to 10 local subscribers, tracing
// off: the allocations per publication of the publish and delivery path.
func BenchmarkPublishFanOut(b *testing.B) {
	e := startOn(b, memory.New(nil), &hub.Options{RequestRate: -1}, nil)
	subs := make([]*client, 10)
	for i := range subs {
		subs[i] = e.dial(b)
		subs[i].call("subscribe", `,"channel":"fan"`, nil)
	}
	ctx := context.Background()
	data := json.RawMessage(`{"text":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.hub.Publish(ctx, "fan", data); err != nil {
			b.Fatal(err)
		}
		for _, c := range subs {
			c.next()
		}
	}
}
