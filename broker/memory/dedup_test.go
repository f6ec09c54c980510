package memory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// TestDedupWindowAndBound: a key is remembered for DedupWindow after its first call, and at most
// DedupKeys keys are: beyond, the oldest goes first.
func TestDedupWindowAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	b := started(t, &Options{DedupWindow: time.Minute, DedupKeys: 3, now: func() time.Time { return now }})
	ctx := context.Background()
	once := func(key string) broker.Position {
		t.Helper()
		p, err := b.PublishOnce(ctx, "d", []byte("1"), key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := once("a")
	now = now.Add(59 * time.Second)
	if p := once("a"); p != a {
		t.Fatalf("within the window: %+v, want %+v", p, a)
	}
	now = now.Add(2 * time.Second)
	if p := once("a"); p.Offset != 2 {
		t.Fatalf("after the window the key publishes again: %+v", p)
	}
	b1, _, _ := once("b"), once("c"), once("d") // 4 keys: a, the oldest, is forgotten
	if p := once("b"); p != b1 {
		t.Fatalf("b within the bound: %+v, want %+v", p, b1)
	}
	if p := once("a"); p.Offset != 6 {
		t.Fatalf("a beyond the bound publishes again: %+v", p)
	}
	b.dedup.mu.Lock()
	n := len(b.dedup.keys)
	b.dedup.mu.Unlock()
	if n > 3 {
		t.Fatalf("%d keys remembered, bound 3", n)
	}
}

// TestDedupFailureFreesTheKey: a PublishOnce that failed published nothing; the key's next call
// publishes.
func TestDedupFailureFreesTheKey(t *testing.T) {
	b := started(t, &Options{MaxBytes: 1024})
	ctx := context.Background()
	if _, err := b.PublishOnce(ctx, "d", make([]byte, 4096), "k"); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("a publication beyond MaxBytes: %v", err)
	}
	if p, err := b.PublishOnce(ctx, "d", []byte("1"), "k"); err != nil || p.Offset != 1 {
		t.Fatalf("the key after a failure: %+v %v", p, err)
	}
	if _, err := b.PublishOnce(ctx, "d", []byte("1"), strings.Repeat("k", broker.MaxDedupKeyLen+1)); err == nil {
		t.Fatal("a key beyond broker.MaxDedupKeyLen: accepted")
	}
}

// TestRemoveHistoryFrees: RemoveHistory gives back what the history held; an unwatched
// channel's stream goes, a watched one stays with a new epoch.
func TestRemoveHistoryFrees(t *testing.T) {
	b := started(t, nil)
	ctx := context.Background()
	for range 10 {
		if _, err := b.Publish(ctx, "a", []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Subscribe(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	old, _ := b.Publish(ctx, "w", []byte("0123456789"))
	if err := b.RemoveHistory(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveHistory(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Channels != 1 || st.Bytes != streamCost("w") {
		t.Fatalf("after removing both: %+v, want the watched stream alone (%d bytes)", st, streamCost("w"))
	}
	r, _ := b.History(ctx, "w", nil, 1)
	if r.Epoch == old.Epoch || r.Offset != 0 {
		t.Fatalf("the watched stream after RemoveHistory: %+v (before %+v)", r.Position, old)
	}
}

// TestNamespaceSweep: the sweep runs at a quarter of the shortest HistoryTTL, a namespace's
// included, so an expired channel of that namespace nobody watches is freed in time.
func TestNamespaceSweep(t *testing.T) {
	b := started(t, &Options{Namespaces: []broker.Namespace{{Prefix: "brief:", HistorySize: 5, HistoryTTL: 40 * time.Millisecond}}})
	if b.sweepEvery != 40*time.Millisecond {
		t.Fatalf("sweep every %v/4", b.sweepEvery)
	}
	if _, err := b.Publish(context.Background(), "brief:a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.Stats().Channels != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("brief:a not freed: %+v", b.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
