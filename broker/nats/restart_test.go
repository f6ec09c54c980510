package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// TestRestartKeepsStreamsAndFillsTheGap: NATS restarts on its store; history, offsets and
// epochs survive it, and a subscribed node that was still reconnecting while another published
// delivers everything, in order, once.
func TestRestartKeepsStreamsAndFillsTheGap(t *testing.T) {
	dir := t.TempDir()
	s := runServer(t, dir, 0)
	url := s.ClientURL()
	ctx := context.Background()
	col := newCollector()
	slow := started(t, s, Options{ConnectOptions: []natsgo.Option{natsgo.ReconnectWait(400 * time.Millisecond)}}, col.deliver)
	fast := started(t, s, Options{}, nil)
	if err := slow.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	var first broker.Position
	for i := 1; i <= 3; i++ {
		p, err := slow.Publish(ctx, "r", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		first = p
	}
	col.wait(t, "r", 3)
	s.Shutdown()
	s.WaitForShutdown()
	runServerAt(t, dir, url)

	for i := 4; i <= 6; i++ {
		var (
			p   broker.Position
			err error
		)
		eventually(t, "a publication after the restart", func() bool {
			p, err = fast.Publish(ctx, "r", []byte(fmt.Sprint(i)))
			return err == nil
		})
		if p.Epoch != first.Epoch || p.Offset != uint64(i) {
			t.Fatalf("publication %d after the restart: %+v (before: %+v)", i, p, first)
		}
	}
	if slow.nc.IsConnected() {
		t.Log("the slow node reconnected before the publications: the gap is filled by the dispatcher, not the reconnect")
	}
	checkSequence(t, "slow node", col.wait(t, "r", 6), 6)
	time.Sleep(50 * time.Millisecond)
	checkSequence(t, "slow node, a moment later", col.get("r"), 6)
	if _, err := fast.Publish(ctx, "r", []byte("7")); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, "slow node, subscribed again after the restart", col.wait(t, "r", 7), 7)
	r, err := slow.History(ctx, "r", &broker.Position{}, 100)
	if err != nil || !r.Complete || len(r.Publications) != 7 || r.Epoch != first.Epoch {
		t.Fatalf("history after the restart: %+v %v", r, err)
	}
}

// TestManyChannelsCatchUpAfterRestart: 2,000 subscribed channels each miss a publication while
// their node reconnects to a restarted NATS; all of them catch up once it is back, through at
// most maxReads history reads at a time.
func TestManyChannelsCatchUpAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 channels")
	}
	const channels = 2000
	dir := t.TempDir()
	s := runServer(t, dir, 0)
	url := s.ClientURL()
	ctx := context.Background()
	var (
		mu        sync.Mutex
		delivered = map[string]int{}
	)
	slow := started(t, s, Options{ConnectOptions: []natsgo.Option{natsgo.ReconnectWait(3 * time.Second)}},
		func(p broker.Publication) {
			mu.Lock()
			delivered[p.Channel]++
			mu.Unlock()
		})
	fast := started(t, s, Options{}, nil)
	name := func(i int) string { return fmt.Sprintf("many-%d", i) }
	for i := range channels {
		if err := slow.Subscribe(ctx, name(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Shutdown()
	s.WaitForShutdown()
	runServerAt(t, dir, url)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < channels; i += 8 {
				var err error
				for try := 0; try < 100; try++ { // the stream may be recovering
					if _, err = fast.Publish(ctx, name(i), []byte("1")); err == nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if slow.nc.IsConnected() {
		t.Log("the slow node reconnected before all was published: some channels were filled by the dispatcher")
	}
	start := time.Now()
	eventuallyWithin(t, 30*time.Second, "every channel's publication", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == channels
	})
	t.Logf("all %d channels delivered %v after the last publication", channels, time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	for ch, n := range delivered {
		if n != 1 {
			t.Fatalf("%s: %d deliveries, want 1", ch, n)
		}
	}
}
