package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/wsgate/wsgate/broker"
)

// runCapabilities tests the optional capabilities the suite's brokers implement: a broker that
// implements one must pass its tests.
func runCapabilities(t *testing.T, start func(t *testing.T) (broker.Broker, *collector)) {
	ctx := context.Background()
	probe, _ := start(t)
	if _, ok := probe.(broker.HistoryRemover); ok {
		t.Run("RemoveHistory", func(t *testing.T) {
			b, col := start(t)
			testRemoveHistory(t, ctx, b, col)
		})
		t.Run("RemoveHistoryWhilePublishing", func(t *testing.T) {
			b, col := start(t)
			testRemoveWhilePublishing(t, ctx, b, col)
		})
	}
	if _, ok := probe.(broker.Deduplicator); ok {
		t.Run("PublishOnce", func(t *testing.T) {
			b, col := start(t)
			testPublishOnce(t, ctx, b, col)
		})
	}
}

func testRemoveHistory(t *testing.T, ctx context.Context, b broker.Broker, col *collector) {
	rm := b.(broker.HistoryRemover)
	if err := b.Subscribe(ctx, "rm"); err != nil {
		t.Fatal(err)
	}
	var old broker.Position
	for i := 1; i <= 3; i++ {
		var err error
		if old, err = b.Publish(ctx, "rm", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := rm.RemoveHistory(ctx, "rm"); err != nil {
		t.Fatal(err)
	}
	r, err := b.History(ctx, "rm", nil, 10)
	if err != nil || len(r.Publications) != 0 || r.Offset != 0 {
		t.Fatalf("history after RemoveHistory: %+v %v", r, err)
	}
	if r, _ = b.History(ctx, "rm", &old, 10); r.Complete {
		t.Fatalf("recovery from before RemoveHistory must be incomplete: %+v", r)
	}
	p, err := b.Publish(ctx, "rm", []byte("4"))
	if err != nil || p.Epoch == old.Epoch || p.Offset != 1 {
		t.Fatalf("first publication after RemoveHistory: %+v %v (before: %+v): a new epoch from offset 1", p, err, old)
	}
	if r, _ = b.History(ctx, "rm", &old, 10); r.Complete || r.Position != p {
		t.Fatalf("recovery from before RemoveHistory, once published again: %+v", r)
	}
	if r, _ = b.History(ctx, "rm", &broker.Position{Epoch: p.Epoch}, 10); !r.Complete || len(r.Publications) != 1 || string(r.Publications[0].Data) != "4" {
		t.Fatalf("the new epoch from its start: %+v", r)
	}
	got := col.wait(t, "rm", 4) // still subscribed
	if last := got[3]; last.Epoch != p.Epoch || last.Offset != 1 || len(got) != 4 {
		t.Fatalf("deliveries: %+v", got)
	}
	if err := rm.RemoveHistory(ctx, "rm-never"); err != nil {
		t.Fatalf("RemoveHistory of a channel nobody used: %v", err)
	}
	if r, _ := b.History(ctx, "rm-never", nil, 10); r.Position != (broker.Position{}) || !r.Complete {
		t.Fatalf("RemoveHistory created a stream: %+v", r)
	}
}

// testRemoveWhilePublishing: publications racing with removals keep each epoch's offsets
// contiguous from 1, and the subscribed node gets every one of them, in order. In each round
// the publishers publish while a removal runs.
func testRemoveWhilePublishing(t *testing.T, ctx context.Context, b broker.Broker, col *collector) {
	const publishers, each, rounds = 4, 10, 5
	rm := b.(broker.HistoryRemover)
	if err := b.Subscribe(ctx, "rp"); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got = map[string]map[uint64]bool{} // positions returned, by epoch
	)
	for round := range rounds {
		var wg sync.WaitGroup
		for g := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					p, err := b.Publish(ctx, "rp", []byte(fmt.Sprintf(`"%d-%d-%d"`, round, g, i)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if got[p.Epoch] == nil {
						got[p.Epoch] = map[uint64]bool{}
					}
					if got[p.Epoch][p.Offset] {
						t.Errorf("position %+v returned twice", p)
					}
					got[p.Epoch][p.Offset] = true
					mu.Unlock()
				}
			}()
		}
		if round > 0 {
			if err := rm.RemoveHistory(ctx, "rp"); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
	}
	if len(got) < 2 {
		t.Fatalf("one epoch after %d removals among the publications", rounds-1)
	}
	total := 0
	for epoch, offs := range got {
		for o := uint64(1); o <= uint64(len(offs)); o++ {
			if !offs[o] {
				t.Fatalf("epoch %s: offsets %v are not 1..%d", epoch, offs, len(offs))
			}
		}
		total += len(offs)
	}
	dl := col.wait(t, "rp", total)
	seen := map[string]bool{}
	for i, p := range dl {
		switch {
		case i > 0 && p.Epoch == dl[i-1].Epoch && p.Offset == dl[i-1].Offset+1:
		case (i == 0 || p.Epoch != dl[i-1].Epoch) && p.Offset == 1 && !seen[p.Epoch]:
			seen[p.Epoch] = true
		default:
			t.Fatalf("delivery %d: %+v after %+v", i, p, dl[max(i-1, 0)])
		}
	}
	if len(dl) != total {
		t.Fatalf("%d deliveries, %d publications", len(dl), total)
	}
}

func testPublishOnce(t *testing.T, ctx context.Context, b broker.Broker, col *collector) {
	d := b.(broker.Deduplicator)
	if err := b.Subscribe(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	p1, err := d.PublishOnce(ctx, "once", []byte(`"first"`), "k1")
	if err != nil || p1.Offset != 1 {
		t.Fatalf("first PublishOnce: %+v %v", p1, err)
	}
	again, err := d.PublishOnce(ctx, "once", []byte(`"second"`), "k1")
	if err != nil || again != p1 {
		t.Fatalf("the same key again: %+v %v, want the first's position %+v", again, err, p1)
	}
	p2, err := d.PublishOnce(ctx, "once", []byte(`"other"`), "k2")
	if err != nil || p2.Offset != 2 {
		t.Fatalf("another key: %+v %v", p2, err)
	}
	if p, err := d.PublishOnce(ctx, "once-elsewhere", []byte(`"x"`), "k1"); err != nil || p.Offset != 1 {
		t.Fatalf("the same key on another channel publishes: %+v %v", p, err)
	}
	if p, err := b.Publish(ctx, "once", []byte(`"plain"`)); err != nil || p.Offset != 3 {
		t.Fatalf("a plain publication after: %+v %v", p, err)
	}

	// Concurrent calls with one key: one publication, one position for all.
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		pos = map[broker.Position]int{}
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := d.PublishOnce(ctx, "once", []byte(`"racing"`), "k3")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			pos[p]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(pos) != 1 || pos[broker.Position{Epoch: p1.Epoch, Offset: 4}] != 8 {
		t.Fatalf("8 concurrent calls with one key: positions %v, want offset 4 for all", pos)
	}
	r, err := b.History(ctx, "once", &broker.Position{Epoch: p1.Epoch}, 100)
	if err != nil || len(r.Publications) != 4 {
		t.Fatalf("history: %+v %v", r, err)
	}
	for i, want := range []string{`"first"`, `"other"`, `"plain"`, `"racing"`} {
		if string(r.Publications[i].Data) != want {
			t.Fatalf("publication %d: %s, want %s", i+1, r.Publications[i].Data, want)
		}
	}
	col.wait(t, "once", 4)
	col.none(t, "never-delivered") // let a stray delivery arrive
	if n := len(col.wait(t, "once", 4)); n != 4 {
		t.Fatalf("%d deliveries, want 4", n)
	}
	if _, err := d.PublishOnce(ctx, "once", []byte("1"), ""); err == nil {
		t.Fatal("PublishOnce with an empty key: accepted")
	}
}
