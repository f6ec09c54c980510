package clustertest_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/internal/testport"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(childNATSEnv); addr != "" { // this process is a node another test kills
		os.Exit(runChildNode(addr))
	}
	goleak.VerifyTestMain(m)
}

// natsServer is an in-process NATS server with JetStream, which a test can stop and start again
// on the same port and store, as an operator restarts one.
type natsServer struct {
	t    testing.TB
	opts server.Options
	s    *server.Server
}

// URL is the server's client URL; it stays the same across a restart.
func (n *natsServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// runNATS starts one server with JetStream on a temporary store and a free loopback port (below
// the ephemeral range, where nothing else takes it while the server is down: testport); it is
// shut down at the end of the test.
func runNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, opts: server.Options{
		ServerName: "solo", Host: "127.0.0.1", Port: testport.Port(t),
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// runNATSCluster starts three servers routed into one cluster with JetStream, each on its own
// store, and waits until the cluster has a JetStream meta leader.
func runNATSCluster(t testing.TB) []*natsServer {
	t.Helper()
	var routes []*url.URL
	ports := make([]int, 3)
	for i := range ports {
		ports[i] = testport.Port(t)
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	var ns []*natsServer
	for i := range 3 {
		n := &natsServer{t: t, opts: server.Options{
			ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: testport.Port(t),
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "wsgate-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}}
		ns = append(ns, n)
	}
	for _, n := range ns {
		n.start()
		t.Cleanup(n.stop)
	}
	// Routes and a meta leader are not enough for a stream on three peers: the leader must know
	// them all. Creating one is the proof.
	nc, err := natsgo.Connect(clusterURL(ns, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	probe := jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe"}, Storage: jetstream.MemoryStorage, Replicas: 3}
	waitUntil(t, "a JetStream cluster of 3 that places a stream on 3 peers", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, probe)
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, probe.Name); err != nil {
		t.Fatal(err)
	}
	return ns
}

// streamLeader returns the index of the server that leads the wsgate stream.
func streamLeader(t testing.TB, ns []*natsServer) int {
	t.Helper()
	leader := -1
	waitUntil(t, "a leader of the stream", 10*time.Second, func() bool {
		for i, n := range ns {
			if n.s.JetStreamIsStreamLeader("$G", natsbroker.DefaultStream) {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// clusterURL lists every server's URL, as a node's broker is configured for a NATS cluster:
// servers[first] first.
func clusterURL(servers []*natsServer, first int) string {
	urls := []string{servers[first].URL()}
	for i, n := range servers {
		if i != first {
			urls = append(urls, n.URL())
		}
	}
	return strings.Join(urls, ",")
}

func (n *natsServer) start() {
	n.t.Helper()
	s, err := server.NewServer(&n.opts)
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start() // owner: this natsServer; stopped by stop
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		n.t.Fatalf("nats server %s not ready within 10s; its ports now: %s", n.opts.ServerName, n.portsNow())
	}
	n.s = s
}

// portsNow says whether the server's ports can be listened on now (it failed to start): a port
// another process holds is the likely cause.
func (n *natsServer) portsNow() string {
	var says []string
	for _, p := range []int{n.opts.Port, n.opts.Cluster.Port} {
		if p <= 0 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			says = append(says, err.Error())
			continue
		}
		l.Close()
		says = append(says, fmt.Sprintf("%d free", p))
	}
	return strings.Join(says, "; ")
}

// stop shuts the server down and waits until it has (a no-op when stopped).
func (n *natsServer) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

// restart starts the server again on the same port and store.
func (n *natsServer) restart() {
	n.stop()
	n.start()
}

// waitUntil polls ok until it holds, or fails the test after within.
func waitUntil(t testing.TB, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
