package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// TestMetricsCountPubSub drives a hub with gorilla clients: subscriptions, publications, one
// delivery per subscriber, a recovery that succeeds and one that cannot, and the broker's
// latency observed once per call.
func TestMetricsCountPubSub(t *testing.T) {
	e := start(t, nil, nil)
	if m := e.hub.Metrics(); m.Channels != 0 || m.Subscriptions != 0 || m.Publications != 0 || m.BrokerPublish.Count != 0 {
		t.Fatalf("a new hub's metrics: %+v", m)
	}
	pubr, a, b := e.dial(t), e.dial(t), e.dial(t)
	a.call("subscribe", `,"channel":"news"`, nil)
	b.call("subscribe", `,"channel":"news"`, nil)
	b.call("subscribe", `,"channel":"other"`, nil)
	m := e.hub.Metrics()
	if m.Channels != 2 || m.Subscriptions != 3 {
		t.Fatalf("channels %d subscriptions %d, want 2 and 3", m.Channels, m.Subscriptions)
	}
	for i := 1; i <= 3; i++ {
		pubr.call("publish", fmt.Sprintf(`,"channel":"news","data":%d`, i), nil)
	}
	if _, err := e.hub.Publish(context.Background(), "other", []byte(`4`)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.push("pub")
	}
	for range 4 {
		b.push("pub")
	}
	// Deliveries are added once per publication, after its fan-out: maybe just after the push left.
	waitUntil(t, "deliveries counted", func() bool { return e.hub.Metrics().Deliveries == 7 })
	m = e.hub.Metrics()
	if m.Publications != 4 || m.PublicationsFailed != 0 || m.Deliveries != 7 || m.DeliveriesDropped != 0 {
		t.Fatalf("publications %d (failed %d), deliveries %d (dropped %d); want 4, 0, 7, 0", m.Publications,
			m.PublicationsFailed, m.Deliveries, m.DeliveriesDropped)
	}
	if m.BrokerPublish.Count != 4 || m.BrokerPublish.Sum <= 0 {
		t.Fatalf("broker publish latency: %+v, want 4 observations", m.BrokerPublish)
	}
	var n uint64
	for _, c := range m.BrokerPublish.Counts {
		n += c
	}
	if n != 4 {
		t.Fatalf("buckets hold %d observations, want 4", n)
	}

	c := e.dial(t)
	c.call("subscribe", `,"channel":"news","since":{"epoch":"gone","offset":1}`, nil)
	c.call("history", `,"channel":"news"`, nil)
	a.ws.Close()
	b.ws.Close()
	waitUntil(t, "a and b's subscriptions removed", func() bool { return e.hub.Metrics().Subscriptions == 1 })
	m = e.hub.Metrics()
	if m.NotRecovered != 1 || m.Recovered != 0 || m.Channels != 1 {
		t.Fatalf("recovered %d, not %d, channels %d; want 0, 1, 1", m.Recovered, m.NotRecovered, m.Channels)
	}
	// history: 3 subscribes without since ask for the top, one with since, one history call.
	if m.BrokerHistory.Count != 5 {
		t.Fatalf("broker history calls %d, want 5", m.BrokerHistory.Count)
	}
	if len(m.BrokerHistory.Counts) != len(hub.HistogramBounds)+1 {
		t.Fatal("a histogram has one bucket per bound and one above")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
