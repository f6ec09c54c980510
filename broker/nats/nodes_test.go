package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// checkSequence fails unless pubs are offsets 1..n of one epoch, in order, each once.
func checkSequence(t *testing.T, who string, pubs []broker.Publication, n int) {
	t.Helper()
	if len(pubs) != n {
		t.Fatalf("%s: %d publications, want %d", who, len(pubs), n)
	}
	for i, p := range pubs {
		if p.Offset != uint64(i+1) || p.Epoch != pubs[0].Epoch {
			t.Fatalf("%s: publication %d is %s/%d (epoch %s first)", who, i, p.Epoch, p.Offset, pubs[0].Epoch)
		}
	}
}

// TestTwoNodesOneSequence: two brokers, two connections, like two nodes, publish at once to one
// channel; both deliver one contiguous sequence and every Publish got its own offset.
func TestTwoNodesOneSequence(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	colA, colB := newCollector(), newCollector()
	a, b := started(t, s, Options{}, colA.deliver), started(t, s, Options{}, colB.deliver)
	for _, n := range []*Broker{a, b} {
		if err := n.Subscribe(ctx, "m"); err != nil {
			t.Fatal(err)
		}
	}
	const perGoroutine, goroutines = 40, 3
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[uint64]bool{}
	)
	for _, n := range []*Broker{a, b} {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perGoroutine {
					p, err := n.Publish(ctx, "m", []byte(fmt.Sprintf(`"%s-%d-%d"`, n.Node(), g, i)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[p.Offset] {
						t.Errorf("offset %d given twice", p.Offset)
					}
					seen[p.Offset] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	const total = 2 * goroutines * perGoroutine
	checkSequence(t, "node a", colA.wait(t, "m", total), total)
	checkSequence(t, "node b", colB.wait(t, "m", total), total)
	r, err := a.History(ctx, "m", nil, 0)
	if err != nil || r.Offset != total || len(r.Publications) != 100 || r.Publications[0].Offset != total-99 {
		t.Fatalf("history: top %+v, %d publications, %v", r.Position, len(r.Publications), err)
	}
}

// TestGapIsFilledFromHistory: publications core NATS lost are read back from the stream and
// delivered before the ones that came after them, once each.
func TestGapIsFilledFromHistory(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a := newBroker(t, s, Options{})
	var lost sync.Map
	a.lose = func(p broker.Publication) bool {
		_, again := lost.LoadOrStore(p.Offset, true)
		return !again && (p.Offset == 3 || p.Offset == 4 || p.Offset == 7)
	}
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	other := started(t, s, Options{}, nil)
	if err := a.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := other.Publish(ctx, "g", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	checkSequence(t, "after losses", col.wait(t, "g", 8), 8)
	time.Sleep(20 * time.Millisecond)
	checkSequence(t, "a moment later", col.get("g"), 8)
}

// TestInterest: a node receives nothing of a channel it does not subscribe to, not even on its
// connection.
func TestInterest(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a := started(t, s, Options{}, col.deliver)
	b := started(t, s, Options{}, nil)
	if err := a.Subscribe(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	before := a.nc.Stats().InMsgs
	for range 50 {
		if _, err := b.Publish(ctx, "theirs", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, "mine", []byte("1")); err != nil {
		t.Fatal(err)
	}
	col.wait(t, "mine", 1)
	if got := a.nc.Stats().InMsgs - before; got != 1 {
		t.Fatalf("node a received %d messages, want 1 (its own channel's)", got)
	}
	if len(col.get("theirs")) != 0 {
		t.Fatal("delivered a channel nobody subscribed to")
	}
}

// TestNATSDown: with the server gone, Publish and History fail with broker.ErrUnavailable
// within Timeout, and nothing of what failed is stored once it is back.
func TestNATSDown(t *testing.T) {
	dir := t.TempDir()
	s := runServer(t, dir, 0)
	ctx := context.Background()
	const timeout = 300 * time.Millisecond
	a := started(t, s, Options{Timeout: timeout}, nil)
	first, err := a.Publish(ctx, "d", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()
	s.Shutdown()
	s.WaitForShutdown()
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"publish", func() error { _, err := a.Publish(ctx, "d", []byte("2")); return err }},
		{"history", func() error { _, err := a.History(ctx, "d", nil, 10); return err }},
		{"subscribe", func() error { return a.Subscribe(ctx, "d") }},
	} {
		start := time.Now()
		err := call.do()
		if took := time.Since(start); !errors.Is(err, broker.ErrUnavailable) || took > timeout+200*time.Millisecond {
			t.Fatalf("%s with NATS down: %v after %v; want broker.ErrUnavailable within %v", call.name, err, took, timeout)
		}
	}
	runServerAt(t, dir, url)
	eventually(t, "reconnect", func() bool { return a.nc.IsConnected() })
	var r broker.HistoryResult
	eventually(t, "history after restart", func() bool {
		r, err = a.History(ctx, "d", nil, 10)
		return err == nil
	})
	if r.Position != first || len(r.Publications) != 1 {
		t.Fatalf("after restart: %+v, want only %+v", r, first)
	}
	p, err := a.Publish(ctx, "d", []byte("3"))
	if err != nil || p != (broker.Position{Epoch: first.Epoch, Offset: 2}) {
		t.Fatalf("publish after restart: %+v %v, want offset 2 of %s", p, err, first.Epoch)
	}
}

// TestExpiredChannelStartsNewEpoch: once all of a channel's history expired, its next
// publication is offset 1 of a new epoch.
func TestExpiredChannelStartsNewEpoch(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	a := started(t, s, Options{HistoryTTL: 300 * time.Millisecond}, nil)
	var p broker.Position
	for range 3 {
		var err error
		if p, err = a.Publish(ctx, "e", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "expiry", func() bool {
		r, err := a.History(ctx, "e", nil, 10)
		return err == nil && r.Position == broker.Position{}
	})
	r, _ := a.History(ctx, "e", &p, 10)
	if r.Complete {
		t.Fatalf("since a position whose history expired: %+v, want incomplete", r)
	}
	q, err := a.Publish(ctx, "e", []byte("1"))
	if err != nil || q.Offset != 1 || q.Epoch == p.Epoch {
		t.Fatalf("after expiry: %+v %v, want offset 1 of an epoch other than %s", q, err, p.Epoch)
	}
}

// TestLongGapWhilePublishing: a gap found while publications keep coming holds them (up to
// maxHeld, then drops the rest for the next round of reading) and still delivers all, once, in
// order. Then: nothing is delivered after Unsubscribe.
func TestLongGapWhilePublishing(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a := newBroker(t, s, Options{HistorySize: 5000})
	a.lose = func(p broker.Publication) bool { return p.Channel == "l" && p.Offset >= 2 && p.Offset <= 10 }
	published := make(chan struct{})
	var paused atomic.Bool
	a.pauseCatchUp = func() {
		if !paused.Swap(true) { // the first catch-up waits until all was published and received
			select {
			case <-published:
				time.Sleep(100 * time.Millisecond)
			case <-time.After(5 * time.Second): // the test failed before: let Close end
			}
		}
	}
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	other := started(t, s, Options{HistorySize: 5000}, nil)
	if err := a.Subscribe(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	const n = maxHeld + 1000
	var wg sync.WaitGroup
	for g := range 4 { // faster than one round trip at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 4 {
				if _, err := other.Publish(ctx, "l", []byte(fmt.Sprint(g))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(published)
	checkSequence(t, "after a long gap", col.wait(t, "l", n), n)
	if !paused.Load() {
		t.Fatal("no catch-up ran")
	}

	// Nothing after Unsubscribe returns.
	if err := a.Subscribe(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := other.Publish(ctx, "u", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	col.wait(t, "u", 3)
	if err := a.Unsubscribe(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Publish(ctx, "u", []byte("1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(col.get("u")); got != 3 {
		t.Fatalf("%d publications delivered, want 3: one came after Unsubscribe", got)
	}
}

// TestJetStreamSilent: a NATS that takes publications and history reads but never answers
// (a JetStream without quorum looks so) makes them fail with broker.ErrUnavailable at Timeout,
// or at the caller's deadline when it comes first. (Once the node sees the stream is gone, it
// fails at once.)
func TestJetStreamSilent(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	const timeout = 200 * time.Millisecond
	a := started(t, s, Options{Timeout: timeout}, nil)
	if _, err := a.Publish(ctx, "s", []byte("1")); err != nil { // the node knows the top
		t.Fatal(err)
	}
	// JetStream gone from the server (deleting the stream would not do: the stream API would
	// still answer History's read of the top from the leader, at once).
	if err := s.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{a.in + ">", "$JS.API.>"} { // a black hole where JetStream was
		sub, err := a.nc.Subscribe(subj, func(*natsgo.Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		max  time.Duration // the caller's deadline, when shorter than Timeout
		do   func(context.Context) error
	}{
		{"publish", timeout, func(ctx context.Context) error { _, err := a.Publish(ctx, "s", []byte("1")); return err }},
		{"history", timeout, func(ctx context.Context) error { _, err := a.History(ctx, "s", nil, 1); return err }},
		{"history, shorter deadline", timeout / 4, func(ctx context.Context) error { _, err := a.History(ctx, "s", nil, 1); return err }},
	} {
		callCtx, cancel := context.WithTimeout(ctx, call.max)
		start := time.Now()
		err := call.do(callCtx)
		cancel()
		if took := time.Since(start); !errors.Is(err, broker.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) ||
			took < call.max-10*time.Millisecond || took > call.max+200*time.Millisecond {
			t.Errorf("%s: %v after %v; want broker.ErrUnavailable, a deadline, after %v", call.name, err, took, call.max)
		}
	}
}

// TestSlowConsumerCatchesUp: when nats.go drops a subscription's messages (a slow consumer),
// the channel catches up at once, even if what was dropped was its last publication.
func TestSlowConsumerCatchesUp(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	a := newBroker(t, s, Options{})
	a.lose = func(p broker.Publication) bool { return p.Offset == 3 }
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.Publish(ctx, "s", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	col.wait(t, "s", 2)
	time.Sleep(20 * time.Millisecond)
	if n := len(col.get("s")); n != 2 {
		t.Fatalf("%d delivered, want 2 (the third lost)", n)
	}
	a.mu.Lock()
	sub := a.subs[a.out+"s"].sub
	a.mu.Unlock()
	a.nc.Opts.AsyncErrorCB(a.nc, sub, natsgo.ErrSlowConsumer) // what nats.go calls
	checkSequence(t, "after the slow consumer", col.wait(t, "s", 3), 3)
}
