package nats

import (
	"context"
	"fmt"
	neturl "net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/internal/testport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runServerAt starts a server storing in dir and listening where url (a previous server's
// ClientURL) says: the same server, restarted.
func runServerAt(t testing.TB, dir, url string) *server.Server {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return runServer(t, dir, port)
}

// runServer starts an in-process NATS server with JetStream on a free loopback port, storing
// in dir (a new temporary directory when empty), and shuts it down at the end of the test.
func runServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if port == 0 {
		// Below the ephemeral range: while a test has the server down, no other process's
		// listener or outgoing connection takes its port (testport).
		port = testport.Port(t)
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start() // owner: the test; stopped by the cleanup below
	if !s.ReadyForConnections(5 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// newBroker returns an unstarted broker on its own connection to s, closed at the end of the test.
func newBroker(t testing.TB, s *server.Server, o Options) *Broker {
	t.Helper()
	o.URL = s.ClientURL()
	o.ConnectOptions = append([]natsgo.Option{natsgo.ReconnectWait(20 * time.Millisecond)}, o.ConnectOptions...)
	b, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 5*time.Second, what, cond)
}

// eventuallyWithin polls cond until it holds or d passes.
func eventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// started is newBroker, started with deliver (nil: discard).
func started(t testing.TB, s *server.Server, o Options, deliver broker.DeliverFunc) *Broker {
	t.Helper()
	b := newBroker(t, s, o)
	if deliver == nil {
		deliver = func(broker.Publication) {}
	}
	if err := b.Start(context.Background(), deliver); err != nil {
		t.Fatal(err)
	}
	return b
}

// collector records deliveries per channel.
type collector struct {
	mu  sync.Mutex
	got map[string][]broker.Publication
}

func newCollector() *collector { return &collector{got: map[string][]broker.Publication{}} }

func (c *collector) deliver(p broker.Publication) {
	c.mu.Lock()
	c.got[p.Channel] = append(c.got[p.Channel], p)
	c.mu.Unlock()
}

func (c *collector) get(ch string) []broker.Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]broker.Publication(nil), c.got[ch]...)
}

// wait returns the deliveries of ch once there are n at least.
func (c *collector) wait(t testing.TB, ch string, n int) []broker.Publication {
	t.Helper()
	var got []broker.Publication
	eventually(t, fmt.Sprintf("%d deliveries on %q", n, ch), func() bool {
		got = c.get(ch)
		return len(got) >= n
	})
	return got
}
