package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// runCluster starts three clustered servers with JetStream on loopback. The route ports are
// free a moment before the servers take them, and another process on the machine may take one
// first: then it tries again with others.
func runCluster(t testing.TB) []*server.Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		servers, ok := tryCluster(t)
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
func tryCluster(t testing.TB) (_ []*server.Server, ok bool) {
	t.Helper()
	ports := make([]int, 3) // route ports, free a moment ago
	var routes []*neturl.URL
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		routes = append(routes, &neturl.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	var servers []*server.Server
	for i := range 3 {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "wsgate-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		})
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
