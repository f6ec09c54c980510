package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/wstest"
)

// TestMain fails the package if a stopped server leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start starts a server for the test and shuts it down at cleanup.
func start(t *testing.T, o *Options) *Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// connect opens an in-process client of s, closed at cleanup.
func connect(t *testing.T, s *Server) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect("", natsgo.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestClusterOfThreeKeepsAnR3Stream(t *testing.T) {
	addrs := wstest.FreeAddrs(t, 3)
	var servers []*Server
	for i, a := range addrs {
		peers := append(append([]string(nil), addrs[:i]...), addrs[i+1:]...)
		servers = append(servers, start(t, &Options{Name: fmt.Sprintf("n%d", i+1), DataDir: t.TempDir(),
			ClusterName: "test", ClusterListen: a, Peers: peers}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := servers[0].Leader(); l == "" || l != servers[2].Leader() {
		t.Fatalf("meta leader: node 1 says %q, node 3 says %q", l, servers[2].Leader())
	}

	js1, err := jetstream.New(connect(t, servers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js1.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3,
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js1.Publish(ctx, "t.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	js3, err := jetstream.New(connect(t, servers[2]))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js3.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 10 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream on node 3: %d messages, cluster %+v; want 10 messages on 3 replicas", info.State.Msgs, info.Cluster)
	}
	msg, err := st.GetMsg(ctx, 10)
	if err != nil || string(msg.Data) != "9" {
		t.Fatalf("message 10 read on node 3: %v %q", err, msg.Data)
	}
}

func TestSingleNodeWithClientListener(t *testing.T) {
	dir := t.TempDir()
	s := start(t, &Options{Name: "solo", DataDir: dir, ClientListen: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect to the client listener %q: %v", s.ClientURL(), err)
	}
	defer nc.Close()
	for _, f := range []string{"jetstream", "wsgate.lock"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data directory: %v", err)
		}
	}
	if s.ClusterAddr() != nil {
		t.Errorf("a cluster listener without -cluster-listen: %v", s.ClusterAddr())
	}
	if u := start(t, &Options{DataDir: t.TempDir()}).ClientURL(); !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Errorf("default client URL %q, want one on loopback", u)
	}
}

func TestBadConfigIsAClearError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inUse := t.TempDir()
	start(t, &Options{DataDir: inUse})

	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"no data dir", Options{}, []string{"data directory is required"}},
		{"data dir below a file", Options{DataDir: filepath.Join(file, "data")}, []string{"data directory", "not a directory"}},
		{"data dir of a running node", Options{DataDir: inUse}, []string{inUse, "in use by another node"}},
		{"cluster port in use", Options{DataDir: t.TempDir(), ClusterListen: taken.Addr().String(), Peers: []string{"127.0.0.1:1"}}, []string{"address already in use"}},
		{"cluster without peers", Options{DataDir: t.TempDir(), ClusterListen: "127.0.0.1:0"}, []string{"needs peers"}},
		{"client port in use", Options{DataDir: t.TempDir(), ClientListen: taken.Addr().String()}, []string{"address already in use"}},
		{"route without a port", Options{DataDir: t.TempDir(), ClusterListen: "127.0.0.1:0", Peers: []string{"node2"}}, []string{"peer route address", `"node2"`, "host:port"}},
		{"route with a bad port", Options{DataDir: t.TempDir(), ClusterListen: "127.0.0.1:0", Peers: []string{"node2:99999"}}, []string{`"node2:99999"`, "port"}},
		{"peers without a cluster", Options{DataDir: t.TempDir(), Peers: []string{"node2:6222"}}, []string{"without a cluster listen address"}},
		{"bad listen address", Options{DataDir: t.TempDir(), ClusterListen: "6222", Peers: []string{"127.0.0.1:1"}}, []string{"cluster listen address", `"6222"`}},
	} {
		o := tc.o
		o.Logger = slog.New(slog.DiscardHandler)
		o.ReadyTimeout = 5 * time.Second
		start := time.Now()
		s, err := Start(&o)
		if err == nil {
			s.Shutdown(context.Background())
			t.Errorf("%s: started", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s: the error took %v", tc.name, took)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o500)
		defer os.Chmod(ro, 0o700)
		if _, err := Start(&Options{DataDir: filepath.Join(ro, "data"), Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("data dir without write permission: %v", err)
		}
	}
}
