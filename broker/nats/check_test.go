package nats

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// TestNewEpochJumpIsCaughtUp: a channel's history expires and it starts a new epoch; when the
// new epoch's first publications are lost, the first one that arrives (offset 3) is held while
// offsets 1 and 2 are read from history: the jump is not silent.
func TestNewEpochJumpIsCaughtUp(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	const ttl = time.Second
	a := newBroker(t, s, Options{HistoryTTL: ttl, CheckInterval: time.Hour})
	var firstEpoch atomic.Value // the first epoch, once known
	a.lose = func(p broker.Publication) bool {
		first, _ := firstEpoch.Load().(string)
		return first != "" && p.Epoch != first && p.Offset < 3
	}
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	other := started(t, s, Options{HistoryTTL: ttl}, nil)
	if err := a.Subscribe(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		p, err := other.Publish(ctx, "e", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		firstEpoch.Store(p.Epoch)
	}
	first := firstEpoch.Load().(string)
	col.wait(t, "e", 2)
	eventually(t, "expiry", func() bool {
		r, err := a.History(ctx, "e", nil, 1)
		return err == nil && r.Position == broker.Position{}
	})
	for range 3 {
		if _, err := other.Publish(ctx, "e", []byte("2")); err != nil {
			t.Fatal(err)
		}
	}
	got := col.wait(t, "e", 3)
	time.Sleep(50 * time.Millisecond)
	got = col.get("e")
	if len(got) != 5 {
		t.Fatalf("%d delivered, want 5: %+v", len(got), got)
	}
	checkSequence(t, "the new epoch", got[2:], 3)
	if got[2].Epoch == first {
		t.Fatalf("new epoch %s is the old one", got[2].Epoch)
	}
}

// TestLostLastPublicationArrivesWithinCheck: the republication of a channel's last publication
// is lost, and nothing follows it; the periodic check of the channel's top finds it missing and
// delivers it within the check interval.
func TestLostLastPublicationArrivesWithinCheck(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	const interval = 300 * time.Millisecond
	a := newBroker(t, s, Options{CheckInterval: interval})
	a.lose = func(p broker.Publication) bool { return p.Channel == "q" && p.Offset == 3 }
	a.checkBytes = 1 // one channel's top per answer, as if each were of the server's limit
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	other := started(t, s, Options{}, nil)
	for _, ch := range []string{"busy", "quiet", "q"} { // among others, the last published
		if err := a.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Publish(ctx, "busy", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := other.Publish(ctx, "q", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	published := time.Now()
	col.wait(t, "q", 2)
	eventuallyWithin(t, 2*interval+checkGrace+time.Second, "the lost publication", func() bool {
		return len(col.get("q")) == 3
	})
	t.Logf("delivered %v after it was published", time.Since(published))
	time.Sleep(2 * interval)
	checkSequence(t, "the channel", col.get("q"), 3)
	checkSequence(t, "another channel", col.get("busy"), 1)
}
