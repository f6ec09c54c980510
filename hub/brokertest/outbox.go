package brokertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// RunOutbox runs the suite of broker.Outbox; newOutbox returns a fresh outbox of its own (no
// event of another), whose pause before an event refused is offered again is short (at most
// 100 ms), closed at the end of the test.
func RunOutbox(t *testing.T, newOutbox func(t *testing.T) broker.Outbox) {
	ctx := context.Background()
	// consume runs o.Consume until fn says stop (or 10 s pass) and returns its error.
	consume := func(t *testing.T, o broker.Outbox, fn func(ev string) (stop bool, err error)) error {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return o.Consume(cctx, func(_ context.Context, ev []byte) error {
			stop, err := fn(string(ev))
			if stop {
				cancel()
			}
			return err
		})
	}
	put := func(t *testing.T, o broker.Outbox, evs ...string) {
		t.Helper()
		for _, ev := range evs {
			if err := o.Put(ctx, []byte(ev)); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("OrderAndRetry", func(t *testing.T) {
		o := newOutbox(t)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprint(i))
		}
		put(t, o, want...)
		refuse, acked := 2, 0
		var offers []string
		err := consume(t, o, func(ev string) (bool, error) {
			offers = append(offers, ev)
			if ev == "3" && refuse > 0 {
				refuse--
				return false, errors.New("backend down")
			}
			acked++
			return acked == 10, nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("consume ended with %v, want the context's error", err)
		}
		want = slices.Insert(want, 3, "3", "3")
		if !slices.Equal(offers, want) {
			t.Fatalf("offers %q, want %q", offers, want)
		}
	})

	t.Run("OneAtATimeAcrossConsumers", func(t *testing.T) {
		o := newOutbox(t)
		var (
			mu         sync.Mutex
			busy, most int
			got        []string
			wg         sync.WaitGroup
		)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for range 3 {
			wg.Add(1)
			go func() { // owner: the test; stopped by cancel, waited for by wg
				defer wg.Done()
				_ = o.Consume(cctx, func(_ context.Context, ev []byte) error {
					mu.Lock()
					busy++
					most = max(most, busy)
					mu.Unlock()
					time.Sleep(time.Millisecond)
					mu.Lock()
					defer mu.Unlock()
					busy--
					if got = append(got, string(ev)); len(got) == 20 {
						cancel()
					}
					return nil
				})
			}()
		}
		var want []string
		for i := range 20 {
			want = append(want, fmt.Sprint(i))
		}
		put(t, o, want...)
		wg.Wait()
		if most != 1 || !slices.Equal(got, want) {
			t.Fatalf("%d offered at once; delivered %q", most, got)
		}
	})

	t.Run("HeldIsNotDeliveredWhileTheNodeLives", func(t *testing.T) {
		o := newOutbox(t)
		for _, step := range []error{
			o.Hold(ctx, "k", []byte("held")), o.Hold(ctx, "k", []byte("held again")),
			o.Hold(ctx, "released", []byte("released")), o.Release(ctx, "released"), o.Release(ctx, "unknown"),
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		put(t, o, "a", "b")
		var got []string
		_ = consume(t, o, func(ev string) (bool, error) {
			got = append(got, ev)
			return len(got) == 2, nil
		})
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_ = o.Consume(cctx, func(_ context.Context, ev []byte) error {
			got = append(got, string(ev))
			return nil
		})
		if !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("delivered %q", got)
		}
	})
}
