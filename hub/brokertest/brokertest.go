// Package brokertest is the conformance suite every hub.Broker implementation must pass.
package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Run runs the suite; newBroker returns a fresh, unstarted broker with a history of at least 10
// publications per channel.
func Run(t *testing.T, newBroker func(t *testing.T) hub.Broker) {
	ctx := context.Background()
	start := func(t *testing.T) (hub.Broker, *collector) {
		b := newBroker(t)
		col := &collector{got: map[string][]hub.Publication{}}
		if err := b.Start(ctx, col.deliver); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(ctx) })
		return b, col
	}

	t.Run("PublishDeliversInOrder", func(t *testing.T) {
		b, col := start(t)
		if err := b.Subscribe(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					if _, err := b.Publish(ctx, "a", []byte(fmt.Sprintf(`"%d-%d"`, g, i))); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		pubs := col.wait(t, "a", 100)
		for i, p := range pubs {
			if p.Offset != uint64(i+1) || p.Epoch != pubs[0].Epoch || p.Channel != "a" {
				t.Fatalf("publication %d: %+v", i, p)
			}
		}
	})

	t.Run("HistoryAndRecovery", func(t *testing.T) {
		b, _ := start(t)
		top, err := b.History(ctx, "h", nil, 10)
		if err != nil || top.Top.Offset != 0 || top.Top.Epoch == "" || len(top.Publications) != 0 {
			t.Fatalf("empty stream: %+v %v", top, err)
		}
		var last protocol.Position
		for i := 1; i <= 5; i++ {
			last, err = b.Publish(ctx, "h", []byte(fmt.Sprint(i)))
			if err != nil || last.Offset != uint64(i) || last.Epoch != top.Top.Epoch {
				t.Fatalf("publish %d: %+v %v", i, last, err)
			}
		}
		r, err := b.History(ctx, "h", &protocol.Position{Epoch: last.Epoch, Offset: 2}, 100)
		if err != nil || !r.Complete || len(r.Publications) != 3 || r.Publications[0].Offset != 3 || string(r.Publications[2].Data) != "5" {
			t.Fatalf("since 2: %+v %v", r, err)
		}
		r, _ = b.History(ctx, "h", &protocol.Position{Epoch: last.Epoch, Offset: 5}, 100)
		if !r.Complete || len(r.Publications) != 0 || r.Top != last {
			t.Fatalf("since top: %+v", r)
		}
		r, _ = b.History(ctx, "h", &protocol.Position{Epoch: "other", Offset: 2}, 100)
		if r.Complete || len(r.Publications) != 0 {
			t.Fatalf("wrong epoch must be incomplete: %+v", r)
		}
		r, _ = b.History(ctx, "h", &protocol.Position{Epoch: last.Epoch, Offset: 9}, 100)
		if r.Complete {
			t.Fatalf("a position ahead of the stream must be incomplete: %+v", r)
		}
		r, _ = b.History(ctx, "h", nil, 2)
		if len(r.Publications) != 2 || r.Publications[0].Offset != 4 {
			t.Fatalf("latest 2: %+v", r)
		}
		r, _ = b.History(ctx, "h", &protocol.Position{Epoch: last.Epoch, Offset: 0}, 2)
		if r.Complete || len(r.Publications) != 2 || r.Publications[0].Offset != 1 {
			t.Fatalf("limit below the gap must be incomplete, oldest first: %+v", r)
		}
	})

	t.Run("ChannelsAreIndependent", func(t *testing.T) {
		b, _ := start(t)
		p1, _ := b.Publish(ctx, "x", []byte("1"))
		p2, _ := b.Publish(ctx, "y", []byte("1"))
		if p1.Offset != 1 || p2.Offset != 1 {
			t.Fatalf("offsets %d %d", p1.Offset, p2.Offset)
		}
	})

	t.Run("ClosedBrokerRefuses", func(t *testing.T) {
		b, _ := start(t)
		_ = b.Close(ctx)
		if _, err := b.Publish(ctx, "c", []byte("1")); err == nil {
			t.Fatal("publish after Close succeeded")
		}
	})
}

type collector struct {
	mu  sync.Mutex
	got map[string][]hub.Publication
}

func (c *collector) deliver(p hub.Publication) {
	c.mu.Lock()
	c.got[p.Channel] = append(c.got[p.Channel], p)
	c.mu.Unlock()
}

func (c *collector) wait(t *testing.T, ch string, n int) []hub.Publication {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]hub.Publication(nil), c.got[ch]...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s: %d publications delivered, want %d", ch, len(got), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
