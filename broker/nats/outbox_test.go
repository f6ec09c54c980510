package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate/broker"
)

// sink records the events Consume acknowledged, in order, from any number of nodes.
type sink struct {
	mu     sync.Mutex
	got    []string
	refuse map[string]int // event → offers to refuse first
	busy   int            // fn calls running, in all nodes
	most   int
}

func newSink() *sink { return &sink{refuse: map[string]int{}} }

func (s *sink) fn(_ context.Context, ev []byte) error {
	s.mu.Lock()
	s.busy++
	s.most = max(s.most, s.busy)
	refuse := s.refuse[string(ev)] > 0
	if refuse {
		s.refuse[string(ev)]--
	}
	s.mu.Unlock()
	time.Sleep(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
	if refuse {
		return errors.New("backend down")
	}
	s.got = append(s.got, string(ev))
	return nil
}

func (s *sink) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// consume runs b.Consume into s until the end of the test.
func consume(t *testing.T, b *Broker, s *sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owner: the test; stopped by the cleanup
		defer close(done)
		_ = b.Consume(ctx, s.fn)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func outboxOptions() Options {
	return Options{Outbox: OutboxOptions{NodeTTL: 600 * time.Millisecond, Retry: 20 * time.Millisecond}}
}

// TestOutboxOrderAcrossNodes: events put by two nodes come out once each, in the order the
// queue stored them, though both nodes consume; one refused comes again before the rest, and
// no two events are ever offered at once.
func TestOutboxOrderAcrossNodes(t *testing.T) {
	s := runServer(t, "", 0)
	a, b := newBroker(t, s, outboxOptions()), newBroker(t, s, outboxOptions())
	ctx := context.Background()
	k := newSink()
	k.refuse["a3"] = 2
	var want []string
	for i := range 10 {
		for _, n := range []struct {
			name string
			b    *Broker
		}{{"a", a}, {"b", b}} {
			ev := fmt.Sprintf("%s%d", n.name, i)
			if err := n.b.Put(ctx, []byte(ev)); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev)
		}
	}
	consume(t, a, k)
	consume(t, b, k)
	eventually(t, "20 events", func() bool { return len(k.events()) >= 20 })
	time.Sleep(50 * time.Millisecond)
	if got := k.events(); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%v\nwant\n%v", got, want)
	}
	if k.most != 1 {
		t.Fatalf("%d events offered at once", k.most)
	}
}

// TestOutboxFull: a queue at MaxEvents refuses with ErrFull; an acknowledgement makes room.
func TestOutboxFull(t *testing.T) {
	s := runServer(t, "", 0)
	o := outboxOptions()
	o.Outbox.MaxEvents = 3
	o.Outbox.MaxHeld = 2
	b := newBroker(t, s, o)
	ctx := context.Background()
	for i := range 3 {
		if err := b.Put(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, []byte("3")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("put beyond MaxEvents: %v", err)
	}
	for _, k := range []string{"a", "b"} {
		if err := b.Hold(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Hold(ctx, "c", []byte("c")); !errors.Is(err, broker.ErrFull) {
		t.Fatalf("hold beyond MaxHeld: %v", err)
	}
	if err := b.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Hold(ctx, "c", []byte("c")); err != nil {
		t.Fatalf("hold after a release: %v", err)
	}
	k := newSink()
	consume(t, b, k)
	eventually(t, "3 events", func() bool { return len(k.events()) == 3 })
	if err := b.Put(ctx, []byte("3")); err != nil {
		t.Fatalf("put once delivered: %v", err)
	}
}

// TestOutboxLostNode: a node dies (its connection cut, nothing released) with events held; of
// two survivors exactly one claims it, and its events still held are delivered once each;
// released ones are not.
func TestOutboxLostNode(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	dead := newBroker(t, s, outboxOptions())
	for i := range 4 {
		if err := dead.Hold(ctx, fmt.Sprintf("conn.%d", i), []byte(fmt.Sprintf("lost %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := dead.Release(ctx, "conn.1"); err != nil {
		t.Fatal(err)
	}
	if err := dead.Hold(ctx, "conn.2", []byte("lost 2, again")); err != nil {
		t.Fatal(err)
	}
	x, y := newBroker(t, s, outboxOptions()), newBroker(t, s, outboxOptions())
	k := newSink()
	consume(t, x, k)
	consume(t, y, k)
	if err := x.Put(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	dead.nc.Close() // killed: no heartbeat, no release
	eventually(t, "the dead node's held events", func() bool { return len(k.events()) >= 4 })
	time.Sleep(3 * outboxOptions().Outbox.NodeTTL) // a second claim would come by now
	got := k.events()
	slices.Sort(got[1:])
	if want := []string{"before", "lost 0", "lost 2, again", "lost 3"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if claims := x.ob.claims.Load() + y.ob.claims.Load(); claims != 1 {
		t.Fatalf("%d claims of the dead node", claims)
	}
	ob := x.ob.cur.Load()
	if _, err := ob.nodes.Get(ctx, dead.ob.key); err == nil {
		t.Fatal("the dead node's entry is still there")
	}
}

// TestOutboxSurvivesRestart: events queued and held before NATS restarts on its store are
// delivered after it, and a node declared lost meanwhile is claimed once it is back.
func TestOutboxSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := runServer(t, dir, 0)
	url := s.ClientURL()
	ctx := context.Background()
	a := newBroker(t, s, outboxOptions())
	for i := range 5 {
		if err := a.Put(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	dead := newBroker(t, s, outboxOptions())
	if err := dead.Hold(ctx, "c", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	dead.nc.Close()
	s.Shutdown()
	s.WaitForShutdown()
	var s2 *server.Server = runServerAt(t, dir, url)
	_ = s2
	k := newSink()
	consume(t, a, k)
	eventuallyWithin(t, 15*time.Second, "6 events after the restart", func() bool { return len(k.events()) >= 6 })
	if got, want := k.events(), []string{"0", "1", "2", "3", "4", "lost"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}
