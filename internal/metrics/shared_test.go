package metrics

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestSharedReadsOncePerAge: callers that come while a read is under way wait for it, and those
// within maxAge of its start reuse it: one read for all of them; a caller after maxAge reads anew.
func TestSharedReadsOncePerAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxAge, callers = time.Second, 16
		var reads atomic.Int64
		release := make(chan struct{})
		s := NewShared(func() int64 {
			<-release // the first read is held until every caller has come
			return reads.Add(1)
		}, maxAge)

		got := make([]int64, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { got[i] = s.Get() })
		}
		synctest.Wait() // every caller is in Get: one reading, the others waiting for it
		if n := reads.Load(); n != 0 {
			t.Fatalf("%d reads ended before the release", n)
		}
		close(release)
		wg.Wait()
		for i, v := range got {
			if v != 1 {
				t.Errorf("caller %d got snapshot %d, want 1 (the one read)", i, v)
			}
		}
		if n := reads.Load(); n != 1 {
			t.Fatalf("%d concurrent callers made %d reads, want 1", callers, n)
		}

		time.Sleep(maxAge - time.Nanosecond)
		if v := s.Get(); v != 1 || reads.Load() != 1 {
			t.Fatalf("within maxAge: snapshot %d after %d reads, want the first reused", v, reads.Load())
		}
		time.Sleep(time.Nanosecond)
		if v := s.Get(); v != 2 || reads.Load() != 2 {
			t.Fatalf("after maxAge: snapshot %d after %d reads, want a new read", v, reads.Load())
		}
	})
}

// TestSharedNeverGoesBack: whatever the interleaving of callers and reads, one caller never gets
// an older snapshot after a newer one (run it with -race).
func TestSharedNeverGoesBack(t *testing.T) {
	for _, maxAge := range []time.Duration{0, 50 * time.Microsecond} {
		var n atomic.Int64
		s := NewShared(func() int64 {
			v := n.Add(1)
			runtime.Gosched() // a read that ends after a later one began, were reads not one at a time
			return v
		}, maxAge)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				last := int64(0)
				for range 2000 {
					v := s.Get()
					if v < last {
						t.Errorf("maxAge %v: snapshot %d after %d", maxAge, v, last)
						return
					}
					last = v
				}
			})
		}
		wg.Wait()
		if v := s.Get(); v < 1 || v > n.Load() {
			t.Errorf("maxAge %v: last snapshot %d of %d reads", maxAge, v, n.Load())
		}
	}
}
