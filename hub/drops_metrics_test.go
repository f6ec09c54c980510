package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
)

// gatedHistory is a memory broker whose History waits for release once armed.
type gatedHistory struct {
	*memory.Broker
	armed   chan struct{}
	entered chan struct{}
	release chan struct{}
}

func (g *gatedHistory) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	r, err := g.Broker.History(ctx, ch, since, limit) // the top as it was before the publications
	select {
	case <-g.armed:
		g.entered <- struct{}{}
		<-g.release
	default:
	}
	return r, err
}

// Review 12: publications that arrive while a subscribe waits for the broker are held back; when
// the connection's queue cannot take them all at goLive, every one not queued is lost to the
// subscriber (a gap), but wsgate_hub_deliveries_dropped_total grows by one: the loop counts the
// first refusal and breaks. Deliveries + drops should account for every publication held back.
func TestHeldBackDropsAreCounted(t *testing.T) {
	g := &gatedHistory{Broker: memory.New(nil), armed: make(chan struct{}), entered: make(chan struct{}, 1), release: make(chan struct{})}
	e := startOn(t, g, nil, &wsgate.Config{SendQueueBytes: 600})
	c := e.dial(t)
	close(g.armed)
	c.send(`{"id":1,"op":"subscribe","channel":"news"}`)
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("subscribe never reached the broker's History")
	}
	const n = 10
	data := `"` + strings.Repeat("x", 100) + `"`
	for i := range n {
		if _, err := e.hub.Publish(context.Background(), "news", []byte(data)); err != nil {
			t.Fatal(i, err)
		}
	}
	close(g.release)
	waitUntil(t, "the subscription live", func() bool {
		m := e.hub.Metrics()
		return m.Deliveries+m.DeliveriesDropped > 0
	})
	time.Sleep(100 * time.Millisecond)
	m := e.hub.Metrics()
	if m.Deliveries+m.DeliveriesDropped != n {
		t.Fatalf("%d publications held back: %d delivered, %d counted dropped (want them to add up to %d)",
			n, m.Deliveries, m.DeliveriesDropped, n)
	}
}
