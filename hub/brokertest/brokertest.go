// Package brokertest is the conformance suite every broker.Broker implementation must pass, and an
// interest-checking wrapper that tells whether a broker's user keeps the interest contract.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Run runs the suite; newBroker returns a fresh, unstarted broker with a history of at least 10
// publications per channel.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	ctx := context.Background()
	start := func(t *testing.T) (broker.Broker, *collector) {
		b := newBroker(t)
		col := &collector{got: map[string][]broker.Publication{}}
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

	t.Run("TraceTravelsWithThePublication", func(t *testing.T) {
		b, col := start(t)
		if err := b.Subscribe(ctx, "tr"); err != nil {
			t.Fatal(err)
		}
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		for _, trace := range []string{tp, "", "bad\r\nheader", strings.Repeat("x", broker.MaxTraceLen+1)} {
			if _, err := b.Publish(broker.ContextWithTrace(ctx, trace), "tr", []byte(`1`)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Publish(ctx, "tr", []byte(`2`)); err != nil {
			t.Fatal(err)
		}
		want := []string{tp, "", "", "", ""} // a bad or oversized trace is not carried
		if d, ok := b.(broker.Deduplicator); ok {
			if _, err := d.PublishOnce(broker.ContextWithTrace(ctx, tp), "tr", []byte(`3`), "k"); err != nil {
				t.Fatal(err)
			}
			want = append(want, tp)
		}
		for i, p := range col.wait(t, "tr", len(want)) {
			if p.Trace != want[i] {
				t.Errorf("publication %d delivered with trace %q, want %q", i+1, p.Trace, want[i])
			}
		}
		h, err := b.History(ctx, "tr", nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range h.Publications {
			if p.Trace != "" {
				t.Errorf("history's publication %d has trace %q: history keeps none", p.Offset, p.Trace)
			}
		}
	})

	t.Run("HistoryAndRecovery", func(t *testing.T) {
		b, _ := start(t)
		if err := b.Subscribe(ctx, "h"); err != nil {
			t.Fatal(err)
		}
		top, err := b.History(ctx, "h", nil, 10)
		if err != nil || top.Offset != 0 || len(top.Publications) != 0 || !top.Complete {
			t.Fatalf("empty subscribed stream: %+v %v", top, err)
		}
		var last broker.Position
		for i := 1; i <= 5; i++ {
			last, err = b.Publish(ctx, "h", []byte(fmt.Sprint(i)))
			if err != nil || last.Offset != uint64(i) || (top.Epoch != "" && last.Epoch != top.Epoch) {
				t.Fatalf("publish %d: %+v %v", i, last, err)
			}
		}
		r0, _ := b.History(ctx, "h", &top.Position, 100)
		if !r0.Complete || len(r0.Publications) != 5 || r0.Position != last {
			t.Fatalf("since the empty stream's top %+v: %+v", top.Position, r0)
		}
		r, err := b.History(ctx, "h", &broker.Position{Epoch: last.Epoch, Offset: 2}, 100)
		if err != nil || !r.Complete || len(r.Publications) != 3 || r.Publications[0].Offset != 3 || string(r.Publications[2].Data) != "5" {
			t.Fatalf("since 2: %+v %v", r, err)
		}
		r, _ = b.History(ctx, "h", &broker.Position{Epoch: last.Epoch, Offset: 5}, 100)
		if !r.Complete || r.More || len(r.Publications) != 0 || r.Position != last {
			t.Fatalf("since top: %+v", r)
		}
		r, _ = b.History(ctx, "h", &broker.Position{Epoch: "other", Offset: 2}, 100)
		if r.Complete || len(r.Publications) != 0 {
			t.Fatalf("wrong epoch must be incomplete: %+v", r)
		}
		r, _ = b.History(ctx, "h", &broker.Position{Epoch: last.Epoch, Offset: 9}, 100)
		if r.Complete {
			t.Fatalf("a position ahead of the stream must be incomplete: %+v", r)
		}
		r, _ = b.History(ctx, "h", nil, 2)
		if len(r.Publications) != 2 || r.Publications[0].Offset != 4 || r.More || !r.Complete {
			t.Fatalf("latest 2: %+v", r)
		}
		r, _ = b.History(ctx, "h", &broker.Position{Epoch: last.Epoch, Offset: 0}, 2)
		if !r.Complete || !r.More || len(r.Publications) != 2 || r.Publications[0].Offset != 1 {
			t.Fatalf("a page of 2 from the start: complete, more to come, oldest first: %+v", r)
		}
		r, _ = b.History(ctx, "h", &broker.Position{Epoch: last.Epoch, Offset: 2}, 3)
		if !r.Complete || r.More || len(r.Publications) != 3 || r.Publications[2].Offset != 5 {
			t.Fatalf("the last page: complete, no more: %+v", r)
		}
		r, _ = b.History(ctx, "h", &broker.Position{}, 100)
		if !r.Complete || len(r.Publications) != 5 || r.Publications[0].Offset != 1 {
			t.Fatalf("since the zero position (the stream did not exist yet): all of it: %+v", r)
		}
	})

	t.Run("ReadingCreatesNothing", func(t *testing.T) {
		b, col := start(t)
		r, err := b.History(ctx, "never", nil, 10)
		if err != nil || r.Position != (broker.Position{}) || !r.Complete || len(r.Publications) != 0 {
			t.Fatalf("history of a channel nobody used: %+v %v", r, err)
		}
		r, _ = b.History(ctx, "never", &broker.Position{}, 10)
		if !r.Complete {
			t.Fatalf("since the zero position of a stream that does not exist: %+v", r)
		}
		r, _ = b.History(ctx, "never", &broker.Position{Epoch: "gone", Offset: 3}, 10)
		if r.Complete {
			t.Fatalf("a position in a stream that no longer exists must be incomplete: %+v", r)
		}
		p, err := b.Publish(ctx, "never", []byte("1"))
		if err != nil || p.Offset != 1 {
			t.Fatalf("first publication after reads: %+v %v", p, err)
		}
		r, _ = b.History(ctx, "never", &broker.Position{}, 10)
		if !r.Complete || len(r.Publications) != 1 || r.Epoch != p.Epoch {
			t.Fatalf("since the zero position, once the stream exists: %+v", r)
		}
		col.none(t, "never")
	})

	t.Run("DeliversOnlyWhileSubscribed", func(t *testing.T) {
		b, col := start(t)
		if _, err := b.Publish(ctx, "i", []byte(`"before"`)); err != nil {
			t.Fatal(err)
		}
		if err := b.Subscribe(ctx, "i"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, "i", []byte(`"during"`)); err != nil {
			t.Fatal(err)
		}
		if got := col.wait(t, "i", 1); string(got[0].Data) != `"during"` {
			t.Fatalf("first delivery %s: a publication before Subscribe was delivered", got[0].Data)
		}
		if err := b.Unsubscribe(ctx, "i"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, "i", []byte(`"after"`)); err != nil {
			t.Fatal(err)
		}
		if err := b.Subscribe(ctx, "i"); err != nil {
			t.Fatal(err)
		}
		last, _ := b.Publish(ctx, "i", []byte(`"again"`))
		got := col.wait(t, "i", 2)
		if len(got) != 2 || string(got[0].Data) != `"during"` || got[0].Offset != 2 ||
			string(got[1].Data) != `"again"` || got[1].Offset != 4 || last.Offset != 4 {
			t.Fatalf("deliveries: %+v", got)
		}
	})

	// A subscriber that joined an empty stream holds its top: either a real epoch at offset 0,
	// kept by the first publication, or the zero Position (a broker that shares streams between
	// nodes cannot name an epoch before the first publication does). Either way it recovers the
	// first publication without a false gap.
	t.Run("EpochKeptWhileSubscribed", func(t *testing.T) {
		b, col := start(t)
		if err := b.Subscribe(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		r1, _ := b.History(ctx, "k", nil, 1)
		p, _ := b.Publish(ctx, "k", []byte("1"))
		if r1.Offset != 0 || (r1.Epoch != "" && p.Epoch != r1.Epoch) || p.Offset != 1 {
			t.Fatalf("subscribed empty stream %+v, then publication %+v", r1, p)
		}
		r2, _ := b.History(ctx, "k", &r1.Position, 10)
		if !r2.Complete || len(r2.Publications) != 1 || r2.Position != p {
			t.Fatalf("recovery from %+v: %+v", r1.Position, r2)
		}
		if got := col.wait(t, "k", 1); got[0].Epoch != p.Epoch || got[0].Offset != 1 {
			t.Fatalf("delivered %+v, published %+v", got[0], p)
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

	runCapabilities(t, start)

	t.Run("ClosedBrokerRefuses", func(t *testing.T) {
		b, _ := start(t)
		_ = b.Close(ctx)
		if _, err := b.Publish(ctx, "c", []byte("1")); !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("publish after Close: %v, want broker.ErrClosed", err)
		}
		if _, err := b.History(ctx, "c", nil, 1); !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("history after Close: %v, want broker.ErrClosed", err)
		}
	})
}

type collector struct {
	mu  sync.Mutex
	got map[string][]broker.Publication
}

func (c *collector) deliver(p broker.Publication) {
	c.mu.Lock()
	c.got[p.Channel] = append(c.got[p.Channel], p)
	c.mu.Unlock()
}

// none checks that nothing was delivered on ch, after giving a broker that delivers
// asynchronously time to do it wrongly.
func (c *collector) none(t *testing.T, ch string) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.got[ch]); n > 0 {
		t.Fatalf("channel %s: %d publications delivered without a Subscribe", ch, n)
	}
}

func (c *collector) wait(t *testing.T, ch string, n int) []broker.Publication {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]broker.Publication(nil), c.got[ch]...)
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
