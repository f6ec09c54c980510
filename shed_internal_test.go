package wsgate

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestHandshakeLimiterQueue: in fake time, a burst of 3×rate gets the rate at once, and the rest
// are told successive places in the queue, rate of them per second of Retry-After; a second later
// the bucket has refilled by the rate and no more; a probe takes no place.
func TestHandshakeLimiterQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate = 4
		l := newHandshakeLimiter(rate)
		perSecond := map[int64]int{}
		for i := range 3 * rate {
			wait := l.take()
			if i < rate {
				if wait != 0 {
					t.Fatalf("handshake %d of the burst refused (wait %v)", i, wait)
				}
				continue
			}
			if wait <= 0 {
				t.Fatalf("handshake %d above the burst taken", i)
			}
			perSecond[int64((wait+time.Second-1)/time.Second)]++
		}
		if perSecond[1] != rate || perSecond[2] != rate || len(perSecond) != 2 {
			t.Errorf("Retry-After seconds of the refused: %v, want %d told 1 s and %d told 2 s", perSecond, rate, rate)
		}
		q := l.queue.Load()
		if wait := l.shedding(); wait <= 0 || wait > 2*time.Second || l.queue.Load() != q {
			t.Errorf("probe told %v and moved the queue from %d to %d: want a place in it, taking none", wait, q, l.queue.Load())
		}
		time.Sleep(time.Second)
		ok := 0
		for range 2 * rate {
			if l.take() == 0 {
				ok++
			}
		}
		if ok != rate {
			t.Errorf("a second later %d handshakes taken, want the rate, %d", ok, rate)
		}
	})
}

// TestHandshakeLimiterAllocs: taking a token, or being refused one, allocates nothing.
func TestHandshakeLimiterAllocs(t *testing.T) {
	l := newHandshakeLimiter(1000)
	if n := testing.AllocsPerRun(10000, func() { l.take() }); n != 0 {
		t.Errorf("take allocates %v times", n)
	}
	if newHandshakeLimiter(0) != nil {
		t.Error("rate 0 makes a limiter")
	}
}

func BenchmarkHandshakeLimiter(b *testing.B) {
	l := newHandshakeLimiter(1 << 30)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.take()
		}
	})
}
