package brokertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// RunNamespaces runs the suite of per-namespace history bounds (broker.Namespace); newBroker
// returns a fresh, unstarted broker with the given namespaces and a default history of at least
// 10 publications per channel, kept for a minute at least. Its Start must refuse a list that
// broker.CheckNamespaces faults. A namespace's age is tested with a HistoryTTL of one second.
func RunNamespaces(t *testing.T, newBroker func(t *testing.T, ns []broker.Namespace) broker.Broker) {
	ctx := context.Background()
	ns := []broker.Namespace{
		{Prefix: "few:", HistorySize: 2},
		{Prefix: "few:more:", HistorySize: 5},
		{Prefix: "none:", HistorySize: 0},
		{Prefix: "brief:", HistorySize: 10, HistoryTTL: time.Second},
	}
	start := func(t *testing.T) (broker.Broker, *collector) {
		b := newBroker(t, ns)
		col := &collector{got: map[string][]broker.Publication{}}
		if err := b.Start(ctx, col.deliver); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(ctx) })
		return b, col
	}
	publish := func(t *testing.T, b broker.Broker, ch string, n int) broker.Position {
		t.Helper()
		var p broker.Position
		for i := 1; i <= n; i++ {
			q, err := b.Publish(ctx, ch, []byte(fmt.Sprint(i)))
			if err != nil || (i > 1 && (q.Epoch != p.Epoch || q.Offset != p.Offset+1)) {
				t.Fatalf("publication %d to %s: %+v %v after %+v", i, ch, q, err, p)
			}
			p = q
		}
		return p
	}
	offsets := func(r broker.HistoryResult) []uint64 {
		var o []uint64
		for _, p := range r.Publications {
			o = append(o, p.Offset)
		}
		return o
	}

	t.Run("SizeByLongestPrefix", func(t *testing.T) {
		b, _ := start(t)
		for _, c := range []struct {
			ch   string
			kept int
		}{{"few:a", 2}, {"few:more:a", 5}, {"fewer", 10}, {"other", 10}} {
			top := publish(t, b, c.ch, 12)
			r, err := b.History(ctx, c.ch, nil, 100)
			if err != nil || len(r.Publications) != c.kept || r.Position != top || r.Publications[0].Offset != uint64(13-c.kept) {
				t.Fatalf("%s keeps %d: %v %+v %v", c.ch, c.kept, offsets(r), r.Position, err)
			}
			first := broker.Position{Epoch: top.Epoch, Offset: uint64(12 - c.kept)}
			if r, _ = b.History(ctx, c.ch, &first, 100); !r.Complete || len(r.Publications) != c.kept {
				t.Fatalf("%s from %d: %v complete %v", c.ch, first.Offset, offsets(r), r.Complete)
			}
			first.Offset--
			if r, _ = b.History(ctx, c.ch, &first, 100); r.Complete || len(r.Publications) != c.kept {
				t.Fatalf("%s from %d, one more than kept: must be incomplete: %v complete %v", c.ch, first.Offset, offsets(r), r.Complete)
			}
		}
	})

	t.Run("NoHistory", func(t *testing.T) {
		b, col := start(t)
		if err := b.Subscribe(ctx, "none:a"); err != nil {
			t.Fatal(err)
		}
		top := publish(t, b, "none:a", 3)
		if got := col.wait(t, "none:a", 3); got[2].Offset != top.Offset || got[2].Epoch != top.Epoch {
			t.Fatalf("deliveries %+v, top %+v", got, top)
		}
		r, err := b.History(ctx, "none:a", nil, 100)
		if err != nil || len(r.Publications) != 0 || r.Position != top || !r.Complete {
			t.Fatalf("history of a namespace without: %+v %v", r, err)
		}
		since := broker.Position{Epoch: top.Epoch, Offset: top.Offset - 1}
		if r, _ = b.History(ctx, "none:a", &since, 100); r.Complete || len(r.Publications) != 0 {
			t.Fatalf("recovery of a missed publication without history must fail: %+v", r)
		}
		if r, _ = b.History(ctx, "none:a", &top, 100); !r.Complete || r.Position != top {
			t.Fatalf("recovery with nothing missed: %+v", r)
		}
	})

	t.Run("AgeByNamespace", func(t *testing.T) {
		b, _ := start(t)
		brief := publish(t, b, "brief:a", 3)
		other := publish(t, b, "other", 3)
		since := broker.Position{Epoch: brief.Epoch}
		if r, _ := b.History(ctx, "brief:a", &since, 100); !r.Complete || len(r.Publications) != 3 {
			t.Fatalf("brief:a at once: %+v", r)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := b.History(ctx, "brief:a", &since, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Publications) == 0 && !r.Complete {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("brief:a keeps its publications after their 1 s: %+v", r)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r, _ := b.History(ctx, "other", &broker.Position{Epoch: other.Epoch}, 100); !r.Complete || len(r.Publications) != 3 {
			t.Fatalf("a channel outside the namespace lost its history with it: %+v", r)
		}
	})

	t.Run("StartRefusesBadLists", func(t *testing.T) {
		for _, bad := range [][]broker.Namespace{
			{{Prefix: "a:", HistorySize: 1}, {Prefix: "a:", HistorySize: 2}},
			{{Prefix: "a:", HistorySize: -1}},
			{{Prefix: "a:", HistoryTTL: -time.Second}},
			{{Prefix: "", HistorySize: 3}},
		} {
			b := newBroker(t, bad)
			if err := b.Start(ctx, func(broker.Publication) {}); err == nil {
				t.Errorf("Start accepted %+v", bad)
			}
			_ = b.Close(ctx)
		}
	})
}
