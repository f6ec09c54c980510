package nats

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/internal/testport"
)

// runCluster starts three clustered servers with JetStream on loopback. The route ports are
// free a moment before the servers take them, below the ephemeral range where only another
// explicit choice can take one first (testport); should one be taken, it tries again with others.
func runCluster(t testing.TB) []*server.Server {
	t.Helper()
	return runClusterWith(t, nil)
}

// runClusterWith is runCluster, with set (when not nil) changing each server's options.
func runClusterWith(t testing.TB, set func(*server.Options)) []*server.Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		servers, ok := tryCluster(t, set)
		if ok {
			return servers
		}
		if attempt == 3 {
			t.Fatal("nats servers not ready")
		}
	}
}

// tryCluster starts three clustered servers and waits for a JetStream meta leader; ok is false,
// the servers shut down, when one of them could not start.
func tryCluster(t testing.TB, set func(*server.Options)) (_ []*server.Server, ok bool) {
	t.Helper()
	ports := make([]int, 3) // route ports, free a moment ago and below the ephemeral range (testport)
	var routes []*neturl.URL
	for i := range ports {
		ports[i] = testport.Port(t)
		routes = append(routes, &neturl.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	var servers []*server.Server
	for i := range 3 {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "wsgate-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
		if set != nil {
			set(o)
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start() // owner: the test; shut down by the cleanup below
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			for _, s := range servers {
				s.Shutdown()
				s.WaitForShutdown()
			}
			return nil, false
		}
	}
	eventuallyWithin(t, 30*time.Second, "a JetStream meta leader", func() bool {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return servers, true
}

// TestThreeNodeCluster: a replicated stream keeps one contiguous sequence for nodes on
// different servers, survives the loss of one server, and refuses with ErrUnavailable, within
// Timeout, once a second is gone and JetStream has no quorum.
func TestThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers")
	}
	servers := runCluster(t)
	ctx := context.Background()
	const timeout = time.Second
	opts := func() Options {
		return Options{Replicas: 3, Timeout: timeout, ConnectOptions: []natsgo.Option{natsgo.DontRandomize()}}
	}
	colA, colB := newCollector(), newCollector()
	a, b := newBroker(t, servers[0], opts()), newBroker(t, servers[2], opts())
	for _, n := range []struct {
		b   *Broker
		col *collector
	}{{a, colA}, {b, colB}} {
		// The cluster may still be forming (no suitable peers yet), and the stream's interest
		// spreading to every server: retry until a publication goes through.
		eventuallyWithin(t, 30*time.Second, "the node's start", func() bool { return n.b.Start(ctx, n.col.deliver) == nil })
		eventuallyWithin(t, 30*time.Second, "the node's first publication", func() bool {
			_, err := n.b.Publish(ctx, "warm-up", []byte("1"))
			return err == nil
		})
		if err := n.b.Subscribe(ctx, "c"); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(n *Broker, count int) {
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range count / 2 {
					if _, err := n.Publish(ctx, "c", []byte("1")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	publish(a, 20)
	publish(b, 20)
	checkSequence(t, "node a", colA.wait(t, "c", 40), 40)
	checkSequence(t, "node b", colB.wait(t, "c", 40), 40)

	servers[1].Shutdown() // neither node's server: a replica, maybe the leader
	servers[1].WaitForShutdown()
	var err error
	eventuallyWithin(t, 30*time.Second, "a publication with one server down", func() bool {
		_, err = b.Publish(ctx, "c", []byte("1"))
		return err == nil
	})
	checkSequence(t, "node a, one server down", colA.wait(t, "c", 41), 41)

	servers[2].Shutdown() // b's server: quorum lost; a stays connected to servers[0]
	servers[2].WaitForShutdown()
	start := time.Now()
	_, err = a.Publish(ctx, "c", []byte("1"))
	if took := time.Since(start); !errors.Is(err, broker.ErrUnavailable) || took > timeout+500*time.Millisecond {
		t.Fatalf("publish without quorum: %v after %v; want broker.ErrUnavailable within %v", err, took, timeout)
	}
}

// TestManyChannelsCatchUpInCluster: 2,000 subscribed channels each lost their last
// publication, and their node reconnects: every one catches up. In a cluster each catch-up reads
// the channel's top through the stream's leader's JetStream API, whose queue a server drains
// whole, failing every request in it, once it holds JetStreamRequestQueueLimit of them: 100
// here, as 10,000 (the default) would be for 200,000 channels. Without the bound on a node's
// reads the servers dropped their queues (and the channels took 9.3 s rather than 3.2 s, their
// catch-ups retrying).
func TestManyChannelsCatchUpInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers, 2,000 channels")
	}
	const channels = 2000
	servers := runClusterWith(t, func(o *server.Options) { o.JetStreamRequestQueueLimit = 100 })
	drops := &dropLog{}
	for _, s := range servers {
		s.SetLogger(drops, false, false)
	}
	ctx := context.Background()
	opts := Options{Replicas: 3, CheckInterval: time.Hour, ConnectOptions: []natsgo.Option{natsgo.DontRandomize()}}
	var (
		losing    atomic.Bool
		mu        sync.Mutex
		delivered = map[string]int{}
	)
	a := newBroker(t, servers[0], opts)
	a.lose = func(broker.Publication) bool { return losing.Load() }
	warm(t, a, func(p broker.Publication) {
		mu.Lock()
		delivered[p.Channel]++
		mu.Unlock()
	})
	other := newBroker(t, servers[1], opts)
	warm(t, other, nil)
	name := func(i int) string { return fmt.Sprintf("many-%d", i) }
	each := func(do func(ch string) error) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < channels; i += 4 {
					if err := do(name(i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	each(func(ch string) error { return a.Subscribe(ctx, ch) })
	losing.Store(true)
	each(func(ch string) error { _, err := other.Publish(ctx, ch, []byte("1")); return err })
	time.Sleep(200 * time.Millisecond) // received and lost
	losing.Store(false)
	mu.Lock()
	if n := len(delivered); n > 0 {
		t.Fatalf("%d channels delivered before the reconnect", n)
	}
	mu.Unlock()
	start := time.Now()
	if err := a.nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 30*time.Second, "every channel's publication", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == channels
	})
	t.Logf("all %d channels delivered %v after the reconnect", channels, time.Since(start))
	if n := drops.count.Load(); n > 0 {
		t.Errorf("the servers dropped their JetStream API queues %d times", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for ch, n := range delivered {
		if n != 1 {
			t.Fatalf("%s: %d deliveries, want 1", ch, n)
		}
	}
}

// dropLog is a server's logger that counts the warnings that it dropped its JetStream API
// queue, and discards the rest.
type dropLog struct{ count atomic.Int64 }

func (l *dropLog) Warnf(format string, v ...any) {
	if strings.Contains(fmt.Sprintf(format, v...), "limit reached, dropping") {
		l.count.Add(1)
	}
}
func (*dropLog) Noticef(string, ...any) {}
func (*dropLog) Fatalf(string, ...any)  {}
func (*dropLog) Errorf(string, ...any)  {}
func (*dropLog) Debugf(string, ...any)  {}
func (*dropLog) Tracef(string, ...any)  {}
