package memory

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/hub/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker { return New(&Options{HistorySize: 10}) })
}

func started(t *testing.T, o *Options) *Broker {
	t.Helper()
	b := New(o)
	if err := b.Start(context.Background(), func(broker.Publication) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func TestHistoryBoundedByCountAndAge(t *testing.T) {
	now := time.Unix(1000, 0)
	b := started(t, &Options{HistorySize: 3, HistoryTTL: time.Minute, now: func() time.Time { return now }})
	ctx := context.Background()
	var pos broker.Position
	for range 5 {
		pos, _ = b.Publish(ctx, "c", []byte("1"))
	}
	r, _ := b.History(ctx, "c", &broker.Position{Epoch: pos.Epoch, Offset: 2}, 100)
	if len(r.Publications) != 3 || r.Publications[0].Offset != 3 || !r.Complete {
		t.Fatalf("count bound: %+v", r)
	}
	r, _ = b.History(ctx, "c", &broker.Position{Epoch: pos.Epoch, Offset: 1}, 100)
	if r.Complete {
		t.Fatalf("offset 2 was evicted; recovery from 1 must be incomplete: %+v", r)
	}
	if got, want := b.Stats().Bytes, streamCost("c")+ringCost(3)+3*entryCost([]byte("1")); got != want {
		t.Fatalf("bytes kept %d, want %d (3 entries)", got, want)
	}
	now = now.Add(2 * time.Minute)
	r, _ = b.History(ctx, "c", &broker.Position{Epoch: pos.Epoch, Offset: 4}, 100)
	if r.Complete || len(r.Publications) != 0 {
		t.Fatalf("age bound: %+v", r)
	}
	if got := b.Stats().Bytes; got != streamCost("c") {
		t.Fatalf("bytes kept after expiry: %d, the stream alone holds %d", got, streamCost("c"))
	}
	b.sweep() // expired and unwatched: the stream is forgotten, a new epoch begins
	if st := b.Stats(); st != (Stats{}) {
		t.Fatalf("after the sweep: %+v", st)
	}
	p, _ := b.Publish(ctx, "c", []byte("1"))
	if p.Epoch == pos.Epoch || p.Offset != 1 {
		t.Fatalf("after losing history the epoch must change: %+v (old %s)", p, pos.Epoch)
	}
}

// TestReadingCreatesNoStream: the hostile case of issue 9 — history requests for a million unused
// names grew the heap by ~9 KB each. Now they keep nothing.
func TestReadingCreatesNoStream(t *testing.T) {
	b := started(t, nil)
	ctx := context.Background()
	before := heap()
	for i := range 100_000 {
		r, err := b.History(ctx, fmt.Sprintf("unused-%d", i), &broker.Position{Epoch: "x", Offset: 1}, 1000)
		if err != nil || r.Complete {
			t.Fatal(r, err)
		}
	}
	if st := b.Stats(); st.Channels != 0 || st.Bytes != 0 {
		t.Fatalf("reads left %+v", st)
	}
	if grown := heap() - before; grown > 4<<20 {
		t.Fatalf("100,000 reads of unused channels grew the heap by %d bytes", grown)
	}
}

func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestRingGrowsWithContent: a channel with one small publication does not hold a ring of
// HistorySize entries.
func TestRingGrowsWithContent(t *testing.T) {
	b := started(t, &Options{HistorySize: 1000})
	ctx := context.Background()
	before := heap()
	for i := range 10_000 {
		if _, err := b.Publish(ctx, fmt.Sprint("c", i), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	perChannel := (heap() - before) / 10_000
	if perChannel > 1024 {
		t.Fatalf("a channel with one publication costs %d bytes", perChannel)
	}
	t.Logf("a channel with one publication: %d bytes", perChannel)
	s, _ := b.locked("c1", false)
	defer s.mu.Unlock()
	if len(s.entries) > 4 {
		t.Fatalf("ring of %d entries for one publication", len(s.entries))
	}
}

func TestCapacity(t *testing.T) {
	ctx := context.Background()
	t.Run("channels", func(t *testing.T) {
		b := started(t, &Options{MaxChannels: 3})
		for i := range 3 {
			if _, err := b.Publish(ctx, fmt.Sprint(i), []byte("1")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Publish(ctx, "3", []byte("1")); !errors.Is(err, broker.ErrFull) {
			t.Fatalf("a 4th channel: %v, want ErrFull", err)
		}
		if err := b.Subscribe(ctx, "3"); !errors.Is(err, broker.ErrFull) {
			t.Fatalf("subscribing a 4th channel: %v, want ErrFull", err)
		}
		if _, err := b.Publish(ctx, "2", []byte("2")); err != nil {
			t.Fatalf("an existing channel still takes publications: %v", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		now := time.Unix(1000, 0)
		data := make([]byte, 1000)
		held := 3*(streamCost("0")+ringCost(4)) + 10*entryCost(data) // channels 0, 1, 2 hold 4, 3, 3
		b := started(t, &Options{MaxBytes: held, HistorySize: 4, now: func() time.Time { return now }})
		for i := range 10 {
			if _, err := b.Publish(ctx, fmt.Sprint(i%3), data); err != nil {
				t.Fatalf("publication %d: %v", i, err)
			}
		}
		_, err := b.Publish(ctx, "x", data)
		if !errors.Is(err, broker.ErrFull) {
			t.Fatalf("past MaxBytes: %v, want ErrFull", err)
		}
		t.Log(err)
		// A full ring makes room for its newest by dropping its oldest: channel 0 holds 4.
		if _, err := b.Publish(ctx, "0", data); err != nil {
			t.Fatalf("replacing the oldest of a full ring: %v", err)
		}
		checkCounted(t, b)
		now = now.Add(DefaultHistoryTTL + time.Second)
		b.sweep() // the janitor's round
		if _, err := b.Publish(ctx, "x", data); err != nil {
			t.Fatalf("after the history expired: %v", err)
		}
	})
}

// checkCounted checks that what the broker counts is what its streams hold.
func checkCounted(t *testing.T, b *Broker) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var sum int64
	for _, s := range b.streams {
		s.mu.Lock()
		sum += s.held()
		s.mu.Unlock()
	}
	if got := b.bytes.Load(); got != sum {
		t.Fatalf("counted %d bytes, the streams hold %d", got, sum)
	}
}

// TestRingShrinks: a ring that held many entries shrinks when most of them expire or are evicted.
func TestRingShrinks(t *testing.T) {
	now := time.Unix(1000, 0)
	b := started(t, &Options{HistoryTTL: time.Minute, now: func() time.Time { return now }})
	ctx := context.Background()
	for range 100 {
		b.Publish(ctx, "c", []byte("1"))
	}
	now = now.Add(30 * time.Second)
	b.Publish(ctx, "c", []byte("2"))
	now = now.Add(31 * time.Second)
	b.sweep()
	s, _ := b.locked("c", false)
	k, n := len(s.entries), s.n
	s.mu.Unlock()
	if n != 1 || k > 4 {
		t.Fatalf("%d entries in a ring of %d slots", n, k)
	}
	checkCounted(t, b)
}

// TestStreamsFreedPromptly: an unwatched channel without history is freed when its last
// subscriber leaves, not a TTL later; a watched one keeps its epoch.
func TestStreamsFreedPromptly(t *testing.T) {
	b := started(t, &Options{HistorySize: -1})
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	p1, _ := b.Publish(ctx, "a", []byte("1"))
	b.sweep()
	p2, _ := b.Publish(ctx, "a", []byte("1"))
	if p1.Epoch != p2.Epoch || p2.Offset != 2 {
		t.Fatalf("a subscribed channel lost its stream: %+v then %+v", p1, p2)
	}
	if err := b.Unsubscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Channels; n != 0 {
		t.Fatalf("%d streams left after the last unsubscribe", n)
	}
}

// TestSweepDoesNotStallTheBroker: the sweep does not hold the broker while it waits for a stream
// that is delivering; publications to other channels go on.
func TestSweepDoesNotStallTheBroker(t *testing.T) {
	release := make(chan struct{})
	b := New(nil)
	if err := b.Start(context.Background(), func(p broker.Publication) {
		if p.Channel == "slow" {
			<-release
		}
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := context.Background()
	if err := b.Subscribe(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()
	wg.Add(1)
	go func() { // owner: this test, which waits for it; ends when release closes
		defer wg.Done()
		_, _ = b.Publish(ctx, "slow", []byte("1"))
	}()
	for b.Stats().Bytes == 0 { // the publication is kept before it is delivered
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go func() { // owner: this test, which waits for it; ends after the stream is released
		defer wg.Done()
		b.sweep()
	}()
	time.Sleep(20 * time.Millisecond) // let the sweep reach the busy stream
	done := make(chan error, 1)
	go func() { // owner: this test; ends when the Publish returns
		_, err := b.Publish(ctx, "other", []byte("1"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Error("a publication to another channel waited for the sweep, which waited for a delivering stream")
		unblock()
		<-done
	}
}

// TestMaxBytesCountsWhatIsHeld: history of tiny publications on long channel names, each
// publication naming its channel with a string of its own (as the hub's decoder makes them),
// filled past the cap: the heap holds about MaxBytes, not several times it (before: ~3.8 times).
func TestMaxBytesCountsWhatIsHeld(t *testing.T) {
	const capBytes = 8 << 20
	ctx := context.Background()
	before := heap()
	b := started(t, &Options{MaxBytes: capBytes})
	prefix := strings.Repeat("n", 240)
	full := 0
	for i := range 60_000 { // three publications a channel, about twice what fits
		name := fmt.Sprintf("%s-%09d", prefix, i/3)
		if _, err := b.Publish(ctx, name, []byte("1")); errors.Is(err, broker.ErrFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	grown := heap() - before
	st := b.Stats()
	t.Logf("heap grew by %d bytes (%.2f× the cap of %d); %d streams, %d bytes counted, %d refused",
		grown, float64(grown)/capBytes, capBytes, st.Channels, st.Bytes, full)
	if grown > capBytes*3/2 {
		t.Fatalf("the heap grew by %d bytes under a cap of %d", grown, capBytes)
	}
	runtime.KeepAlive(b)
}
