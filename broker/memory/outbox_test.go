package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// consumeN runs Consume until n events were acknowledged, with fn refusing the first refuse
// offers, and returns the offers in order.
func consumeN(t *testing.T, o broker.Outbox, n, refuse int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var offers []string
	acked := 0
	err := o.Consume(ctx, func(_ context.Context, ev []byte) error {
		offers = append(offers, string(ev))
		if refuse > 0 {
			refuse--
			return errors.New("backend down")
		}
		if acked++; acked == n {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("consume: %v after %d acknowledged", err, acked)
	}
	return offers
}

// TestOutboxOrderAndRetry: events come out in the order they were put; one fn refuses stays at
// the head and comes again, before anything put after it.
func TestOutboxOrderAndRetry(t *testing.T) {
	o := NewOutbox(&OutboxOptions{Retry: time.Millisecond})
	ctx := context.Background()
	for i := range 5 {
		if err := o.Put(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := fmt.Sprint(consumeN(t, o, 5, 2))
	if want := "[0 0 0 1 2 3 4]"; got != want {
		t.Fatalf("offers %s, want %s", got, want)
	}
	if s := o.Stats(); s.Queued != 0 || s.QueuedBytes != 0 {
		t.Fatalf("after all acknowledged: %+v", s)
	}
}

// TestOutboxBounds: Put beyond MaxEvents or MaxBytes, and Hold beyond MaxHeld or MaxHeldBytes,
// refuse with ErrFull and keep nothing; an acknowledgement or a Release makes room again.
func TestOutboxBounds(t *testing.T) {
	ctx := context.Background()
	o := NewOutbox(&OutboxOptions{MaxEvents: 3, MaxBytes: 3 * (eventOverhead + 10), MaxHeld: 2, MaxHeldBytes: 2 * (eventOverhead + 11)})
	for i := range 3 {
		if err := o.Put(ctx, []byte("0123456789")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if err := o.Put(ctx, []byte("x")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("put beyond MaxEvents: %v", err)
	}
	consumeN(t, o, 1, 0)
	if err := o.Put(ctx, []byte("0123456789x")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("put beyond MaxBytes: %v", err)
	}
	if err := o.Put(ctx, []byte("0123456789")); err != nil {
		t.Fatalf("put after an acknowledgement: %v", err)
	}
	if s := o.Stats(); s.Queued != 3 || s.QueuedBytes != 3*(eventOverhead+10) {
		t.Fatalf("stats: %+v", s)
	}

	if err := o.Hold(ctx, "a", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := o.Hold(ctx, "b", []byte("01234567890")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("hold beyond MaxHeldBytes: %v", err)
	}
	if err := o.Hold(ctx, "b", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := o.Hold(ctx, "a", []byte("012345678")); err != nil { // replaces, smaller
		t.Fatalf("hold again under a key: %v", err)
	}
	if err := o.Hold(ctx, "c", nil); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("hold beyond MaxHeld: %v", err)
	}
	if err := o.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := o.Release(ctx, "nothing"); err != nil {
		t.Fatalf("release of a key holding nothing: %v", err)
	}
	if err := o.Hold(ctx, "c", nil); err != nil {
		t.Fatalf("hold after a release: %v", err)
	}
	if s := o.Stats(); s.Held != 2 || s.HeldBytes != 2*eventOverhead+12 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestOutboxConsumersTakeTurns: two Consume calls never offer at once; when the first ends, the
// second goes on from where it stopped.
func TestOutboxConsumersTakeTurns(t *testing.T) {
	o := NewOutbox(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		busy   bool
		got    []string
		twice  bool
		wg     sync.WaitGroup
		ctxs   [2]context.Context
		stops  [2]context.CancelFunc
		counts [2]int
	)
	for i := range 2 {
		ctxs[i], stops[i] = context.WithCancel(ctx)
		wg.Add(1)
		go func() { // owner: the test; stopped by stops[i], waited for by wg
			defer wg.Done()
			_ = o.Consume(ctxs[i], func(_ context.Context, ev []byte) error {
				mu.Lock()
				if busy {
					twice = true
				}
				busy = true
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				busy = false
				got = append(got, string(ev))
				counts[i]++
				if counts[i] == 5 {
					stops[i]()
				}
				mu.Unlock()
				return nil
			})
		}()
	}
	for i := range 10 {
		if err := o.Put(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if twice {
		t.Fatal("two consumers offered at once")
	}
	if s := fmt.Sprint(got); s != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("delivered %s", s)
	}
}

// TestOutboxClose: Close ends Consume with ErrClosed and refuses what follows.
func TestOutboxClose(t *testing.T) {
	b := New(nil)
	ctx := context.Background()
	if err := b.Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { // owner: the test; ends with Close
		done <- b.Consume(ctx, func(context.Context, []byte) error { return errors.New("down") })
	}()
	time.Sleep(10 * time.Millisecond)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("consume after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consume did not end with Close")
	}
	for _, err := range []error{b.Put(ctx, nil), b.Hold(ctx, "k", nil), b.Release(ctx, "k")} {
		if !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	}
}
