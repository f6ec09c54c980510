package hub_test

import (
	"context"
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
