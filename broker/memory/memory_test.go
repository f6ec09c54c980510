package memory

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

func TestNamespacesConformance(t *testing.T) {
	brokertest.RunNamespaces(t, func(t *testing.T, ns []broker.Namespace) broker.Broker {
		return New(&Options{HistorySize: 10, Namespaces: ns})
	})
}

func started(t testing.TB, o *Options) *Broker {
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

// TestCapacityRefusals: ErrFull comes only when eviction cannot make room.
func TestCapacityRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("bigger than the cap", func(t *testing.T) {
		b := started(t, &Options{MaxBytes: 64 << 10})
		if _, err := b.Publish(ctx, "c", make([]byte, 64<<10)); !errors.Is(err, broker.ErrFull) {
			t.Fatalf("a publication bigger than MaxBytes: %v, want ErrFull", err)
		}
		if st := b.Stats(); st != (Stats{}) {
			t.Fatalf("a refused publication left %+v", st)
		}
	})
	t.Run("every byte pinned by subscribers", func(t *testing.T) {
		b := started(t, &Options{MaxBytes: 10 * streamCost("s0")})
		var err error
		for i := 0; err == nil; i++ {
			if i > 10 {
				t.Fatal("11 streams in the bytes of 10")
			}
			err = b.Subscribe(ctx, fmt.Sprint("s", i))
		}
		if !errors.Is(err, broker.ErrFull) {
			t.Fatalf("subscribing past MaxBytes of watched streams: %v, want ErrFull", err)
		}
		if _, err := b.Publish(ctx, "s0", []byte("1")); !errors.Is(err, broker.ErrFull) {
			t.Fatalf("keeping history with every byte held by watched, empty streams: %v, want ErrFull", err)
		}
		checkCounted(t, b)
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

// ticking is a clock that moves a millisecond each time it is read, so that no two publications
// are made at the same time.
func ticking() func() time.Time {
	var ms atomic.Int64
	return func() time.Time { return time.UnixMilli(1e12 + ms.Add(1)) }
}

// TestHostilePublisherDoesNotStopOthers: one publisher filling MaxBytes with history pushes out
// its own oldest history instead of stopping everyone else's publications (before, every publish
// to every channel was refused for the 5 minutes of the TTL).
func TestHostilePublisherDoesNotStopOthers(t *testing.T) {
	const capBytes = 4 << 20
	b := started(t, &Options{MaxBytes: capBytes, now: ticking()})
	ctx := context.Background()
	data := make([]byte, 60_000)
	var first, last broker.Position
	for i := range 300 { // 18 MB into a 4 MiB cap, over 30 channels
		p, err := b.Publish(ctx, fmt.Sprint("attack-", i%30), data)
		if err != nil {
			t.Fatalf("attacker's publication %d: %v", i, err)
		}
		if i == 0 {
			first = p
		}
		last = p
	}
	for i := range 20 {
		if _, err := b.Publish(ctx, "victim", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("another client's publication %d after the attacker filled the cap: %v", i, err)
		}
	}
	if st := b.Stats(); st.Bytes > capBytes {
		t.Fatalf("%d bytes held, cap %d", st.Bytes, capBytes)
	}
	r, _ := b.History(ctx, "victim", &broker.Position{}, 100)
	if !r.Complete || len(r.Publications) != 20 {
		t.Fatalf("the newest history was evicted: %d publications, complete %v", len(r.Publications), r.Complete)
	}
	r, _ = b.History(ctx, "attack-0", &first, 100)
	if r.Complete {
		t.Fatalf("the attacker's oldest history is still complete: %d publications", len(r.Publications))
	}
	r, _ = b.History(ctx, "attack-29", &broker.Position{Epoch: last.Epoch, Offset: last.Offset - 1}, 10)
	if !r.Complete || len(r.Publications) != 1 {
		t.Fatalf("the attacker's newest publication %+v was evicted: %+v", last, r)
	}
}

// TestManyChannelsEvictUnwatched: MaxChannels full of streams nobody subscribes to does not stop
// a new channel; the least recently published one goes, and its next publication starts a new
// epoch. Streams with subscribers are never evicted: with all of them watched, a new channel is
// refused.
func TestManyChannelsEvictUnwatched(t *testing.T) {
	ctx := context.Background()
	b := started(t, &Options{MaxChannels: 3, now: ticking()})
	pos := map[string]broker.Position{}
	for _, ch := range []string{"a", "b", "c", "a"} {
		p, err := b.Publish(ctx, ch, []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		pos[ch] = p
	}
	if _, err := b.Publish(ctx, "d", []byte("1")); err != nil {
		t.Fatalf("a new channel with MaxChannels full of unwatched streams: %v", err)
	}
	if n := b.Stats().Channels; n != 3 {
		t.Fatalf("%d streams, MaxChannels 3", n)
	}
	pb, pa := pos["b"], pos["a"]
	if r, _ := b.History(ctx, "b", &pb, 10); r.Complete { // published least recently
		t.Fatalf("b was not evicted: %+v", r)
	}
	if r, _ := b.History(ctx, "a", &pa, 10); !r.Complete || r.Position != pa {
		t.Fatalf("a, published since, was evicted: %+v", r)
	}
	if err := b.Subscribe(ctx, "b"); err != nil { // evicts c
		t.Fatalf("subscribing with MaxChannels full of unwatched streams: %v", err)
	}
	p, _ := b.Publish(ctx, "b", []byte("1"))
	if p.Epoch == pos["b"].Epoch || p.Offset != 1 {
		t.Fatalf("an evicted stream's next publication must start a new epoch: %+v (was %+v)", p, pos["b"])
	}
	for _, ch := range []string{"a", "d"} {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, "e", []byte("1")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("a new channel with every stream watched: %v, want ErrFull", err)
	}
	if err := b.Subscribe(ctx, "e"); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("subscribing a new channel with every stream watched: %v, want ErrFull", err)
	}
	if _, err := b.Publish(ctx, "a", []byte("2")); err != nil {
		t.Fatalf("a watched channel still takes publications: %v", err)
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

// TestConcurrentEviction: publishers, subscribers, readers and sweeps at once on small bounds keep
// the count of bytes exact and under the cap, and never deadlock.
func TestConcurrentEviction(t *testing.T) {
	const capBytes = 256 << 10
	b := started(t, &Options{MaxBytes: capBytes, MaxChannels: 50, HistorySize: 20})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() { // owner: this test, which waits for it
			defer wg.Done()
			for i := range 2000 {
				ch := fmt.Sprint("c", (g*7+i)%80)
				switch i % 10 {
				case 0:
					if b.Subscribe(ctx, ch) == nil {
						_ = b.Unsubscribe(ctx, ch)
					}
				case 1:
					_, _ = b.History(ctx, ch, nil, 5)
				case 2:
					b.sweep()
				default:
					if _, err := b.Publish(ctx, ch, make([]byte, 100*(i%50))); err != nil && !errors.Is(err, broker.ErrFull) {
						t.Error(err)
						return
					}
				}
				if got := b.Stats().Bytes; got > capBytes {
					t.Errorf("%d bytes held, cap %d", got, capBytes)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkCounted(t, b)
}

// TestUnkeptPublicationCreatesNoStream: with no history kept, a publication to a channel nobody
// subscribes to keeps nothing; each is the first of an epoch of its own.
func TestUnkeptPublicationCreatesNoStream(t *testing.T) {
	b := started(t, &Options{HistorySize: -1})
	ctx := context.Background()
	p1, err1 := b.Publish(ctx, "x", []byte("1"))
	p2, err2 := b.Publish(ctx, "x", []byte("1"))
	if err1 != nil || err2 != nil || p1.Offset != 1 || p2.Offset != 1 || p1.Epoch == p2.Epoch {
		t.Fatalf("unkept publications: %+v %v, %+v %v", p1, err1, p2, err2)
	}
	if st := b.Stats(); st != (Stats{}) {
		t.Fatalf("unkept publications to an unwatched channel left %+v", st)
	}
	if r, _ := b.History(ctx, "x", &p2, 10); r.Complete {
		t.Fatalf("history after an unkept publication: %+v", r)
	}
}

// TestBigPublicationEvictsManyStreams: room for one big publication in a cap full of streams of
// one tiny publication each takes more rounds than one call makes; Publish tries again.
func TestBigPublicationEvictsManyStreams(t *testing.T) {
	const capBytes = 4 << 20
	ctx := context.Background()
	b := started(t, &Options{MaxBytes: capBytes})
	for i := 0; b.Stats().Bytes < capBytes-2000; i++ {
		if _, err := b.Publish(ctx, fmt.Sprint("tiny-", i), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	n := b.Stats().Channels
	if _, err := b.Publish(ctx, "big", make([]byte, 2<<20)); err != nil {
		t.Fatalf("2 MiB in a 4 MiB cap full of %d one-publication streams: %v", n, err)
	}
	t.Logf("2 MiB took the place of %d of %d streams", n-b.Stats().Channels+1, n)
	checkCounted(t, b)
}
