package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// TestPublishOnceAcrossNodes: two nodes publish with the same keys at once; each key makes one
// publication, and both nodes return its position.
func TestPublishOnceAcrossNodes(t *testing.T) {
	const keys = 20
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a, b := started(t, s, Options{}, nil), started(t, s, Options{}, nil)
	sub := started(t, s, Options{}, col.deliver)
	if err := sub.Subscribe(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		var (
			wg  sync.WaitGroup
			pos [2]broker.Position
		)
		for j, n := range []*Broker{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := n.PublishOnce(ctx, "d", []byte(fmt.Sprint(j)), fmt.Sprint("key-", i))
				if err != nil {
					t.Error(err)
				}
				pos[j] = p
			}()
		}
		wg.Wait()
		if pos[0] != pos[1] || pos[0].Offset != uint64(i+1) {
			t.Fatalf("key %d: positions %+v and %+v, want one, offset %d", i, pos[0], pos[1], i+1)
		}
	}
	checkSequence(t, "subscriber", col.wait(t, "d", keys), keys)
	time.Sleep(50 * time.Millisecond)
	if n := len(col.get("d")); n != keys {
		t.Fatalf("%d deliveries for %d keys", n, keys)
	}
	r, err := a.History(ctx, "d", &broker.Position{}, 100)
	if err != nil || len(r.Publications) != keys {
		t.Fatalf("history: %d publications, %v", len(r.Publications), err)
	}
}

// TestPublishOnceWindow: a key publishes again once the stream's duplicate window has passed.
func TestPublishOnceWindow(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	n := started(t, s, Options{DedupWindow: 300 * time.Millisecond}, nil)
	first, err := n.PublishOnce(ctx, "w", []byte("1"), "k")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := n.PublishOnce(ctx, "w", []byte("2"), "k"); err != nil || p != first {
		t.Fatalf("within the window: %+v %v, want %+v", p, err, first)
	}
	eventually(t, "the key to publish again after the window", func() bool {
		p, err := n.PublishOnce(ctx, "w", []byte("3"), "k")
		return err == nil && p.Offset == 2
	})
}

// TestPublishOnceAfterRemove: the stream remembers a key after RemoveHistory; its publication
// is gone, so a retry publishes nothing and returns the zero Position.
func TestPublishOnceAfterRemove(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	n := started(t, s, Options{}, nil)
	if _, err := n.PublishOnce(ctx, "r", []byte("1"), "k"); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveHistory(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if p, err := n.PublishOnce(ctx, "r", []byte("1"), "k"); err != nil || p != (broker.Position{}) {
		t.Fatalf("the key again, its publication removed: %+v %v", p, err)
	}
	if r, _ := n.History(ctx, "r", nil, 10); r.Offset != 0 {
		t.Fatalf("published again: %+v", r)
	}
}

// TestRemoveHistoryAcrossNodes: a node that knows the channel's top publishes after another
// node removed its history: the stream refuses its stale expectation, and it starts the new
// epoch. Then both publish while removals run, and a third node's subscriber gets every
// publication in order, each epoch from offset 1.
func TestRemoveHistoryAcrossNodes(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a, b := started(t, s, Options{}, nil), started(t, s, Options{}, nil)
	sub := started(t, s, Options{}, col.deliver)
	if err := sub.Subscribe(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	old, err := a.Publish(ctx, "x", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveHistory(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	p, err := a.Publish(ctx, "x", []byte("2"))
	if err != nil || p.Epoch == old.Epoch || p.Offset != 1 {
		t.Fatalf("after another node's removal: %+v %v (before %+v)", p, err, old)
	}
	var (
		mu    sync.Mutex
		count = 2
		wg    sync.WaitGroup
	)
	for round := range 4 {
		for _, n := range []*Broker{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					if _, err := n.Publish(ctx, "x", []byte(fmt.Sprint(round, i))); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					count++
					mu.Unlock()
				}
			}()
		}
		if err := b.RemoveHistory(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	got := col.wait(t, "x", count)
	for i := 1; i < len(got); i++ {
		if q, p := got[i], got[i-1]; !(q.Epoch == p.Epoch && q.Offset == p.Offset+1 || q.Epoch != p.Epoch && q.Offset == 1) {
			t.Fatalf("delivery %d: %+v after %+v", i, q, p)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(col.get("x")); n != count {
		t.Fatalf("%d deliveries, %d publications", n, count)
	}
}
