package events

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/internal/natsserver"
)

// nodeTTL is the NATS outbox's NodeTTL in these tests: a dead node is claimed within 1.33 s.
const nodeTTL = time.Second

// Environment of the child process TestNATSKilledNode starts: this test binary, which then
// runs childMain instead of the tests.
const (
	childNATS    = "WSGATE_EVENTS_CHILD_NATS"
	childBackend = "WSGATE_EVENTS_CHILD_BACKEND"
)

// childMain is the node TestNATSKilledNode kills: on the NATS outbox, it tells of three
// connections (c0, c1, c2) and of c1's end, prints "ready" once all is in the outbox, and waits
// for its SIGKILL. It reports whether it ran (then the tests do not).
func childMain() bool {
	url := os.Getenv(childNATS)
	if url == "" {
		return false
	}
	fail := func(err error) { fmt.Println("child:", err); os.Exit(2) }
	b, err := natsbroker.New(&natsbroker.Options{URL: url, Node: "dead", Outbox: natsbroker.OutboxOptions{NodeTTL: nodeTTL}})
	if err != nil {
		fail(err)
	}
	s, err := New(context.Background(), Options{URL: os.Getenv(childBackend), Outbox: b, Node: "dead",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fail(err)
	}
	at := time.Now().Add(-time.Minute)
	for i := range 3 {
		s.Connected(ConnectInfo{Client: fmt.Sprintf("c%d", i), User: "u" + strconv.Itoa(i), Time: at})
	}
	s.Disconnected(DisconnectInfo{ConnectInfo: ConnectInfo{Client: "c1", User: "u1", Time: at}, Code: 1000, Reason: "bye"})
	for s.Stats().Pending > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("ready")
	select {} // until SIGKILL
}

// runNATS starts the embedded NATS server (internal/natsserver) storing in dir, its client
// listener on a loopback port (random when 0), and shuts it down at the end of the test.
func runNATS(t testing.TB, dir string, port int) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(&natsserver.Options{
		DataDir: dir, ClientListen: "127.0.0.1:" + strconv.Itoa(port), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// natsSender is a node: a NATS broker on s (logging into logs when not nil) and a Sender on its
// outbox, both closed at the end of the test.
func natsSender(t *testing.T, url, backendURL, node string, logs *logBuffer) *Sender {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	b, err := natsbroker.New(&natsbroker.Options{URL: url, Node: node, Logger: logger,
		Outbox: natsbroker.OutboxOptions{NodeTTL: nodeTTL, Retry: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return newSender(t, Options{URL: backendURL, Outbox: b, Node: node, Logger: slog.New(slog.DiscardHandler)})
}

// TestNATSKilledNode: a node killed with SIGKILL, with three connections told and one of them
// ended: of the two surviving nodes exactly one claims it, and the backend learns of every
// connect, of c1's real end, and of the ends of c0 and c2 as a lost node's, once each.
func TestNATSKilledNode(t *testing.T) {
	ns := runNATS(t, t.TempDir(), 0)
	be := &backend{}
	srv := httptest.NewServer(be)
	defer srv.Close()
	logs := [2]*logBuffer{{}, {}}
	natsSender(t, ns.ClientURL(), srv.URL, "x", logs[0])
	natsSender(t, ns.ClientURL(), srv.URL, "y", logs[1])

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childNATS+"="+ns.ClientURL(), childBackend+"="+srv.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ready := make(chan string, 1)
	go func() { // owner: the test; ends when the child's stdout closes
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("child: %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the child is not ready")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = cmd.Wait()

	eventually(t, 15*time.Second, "six events", func() bool { return len(distinct(be.got())) == 6 })
	t.Logf("the lost node's disconnects arrived %v after its death", time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * nodeTTL) // a second claim would show by now
	evs := be.got()
	first := map[string]Event{}
	order := map[string]int{}
	for i, e := range evs {
		if _, ok := first[e.ID]; !ok {
			first[e.ID], order[e.ID] = e, i
		}
	}
	for i := range 3 {
		c := fmt.Sprintf("c%d", i)
		con, okc := first[eventID("dead", c, TypeConnect)]
		dis, okd := first[eventID("dead", c, TypeDisconnect)]
		if !okc || !okd || order[con.ID] > order[dis.ID] {
			t.Fatalf("%s: connect %+v, disconnect %+v", c, con, dis)
		}
		if lost := i != 1; dis.NodeLost != lost || con.User != "u"+strconv.Itoa(i) || dis.User != con.User {
			t.Fatalf("%s: disconnect %+v", c, dis)
		}
		if dis.NodeLost && (dis.Code != CodeNodeLost || dis.Reason != ReasonNodeLost || dis.Time.Before(killed) ||
			dis.DurationMS == nil || *dis.DurationMS < 60_000) {
			t.Fatalf("%s: lost node's disconnect %+v", c, dis)
		}
	}
	lostPosts := 0
	for _, e := range evs {
		if e.NodeLost {
			lostPosts++
		}
	}
	// Claims of the dead node (a survivor slowed down beyond NodeTTL by a loaded machine may be
	// claimed too: that is not what this counts).
	claims := strings.Count(logs[0].String(), "lost=dead-") + strings.Count(logs[1].String(), "lost=dead-")
	if lostPosts != 2 || claims != 1 {
		t.Fatalf("%d lost node's disconnects posted, %d claims; logs:\n%s\n%s", lostPosts, claims, logs[0], logs[1])
	}
}

// TestNATSRestart: events in the outbox while the backend is down survive a NATS restart on
// its store, and arrive once the backend is up, in order.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	ns := runNATS(t, dir, 0)
	url := ns.ClientURL()
	be := &backend{}
	be.status.Store(503)
	srv := httptest.NewServer(be)
	defer srv.Close()
	s := natsSender(t, url, srv.URL, "n1", nil)
	const n = 10
	for i := range n {
		ci := ConnectInfo{Client: fmt.Sprintf("c%d", i)}
		s.Connected(ci)
		s.Disconnected(DisconnectInfo{ConnectInfo: ci, Code: 1000})
	}
	eventually(t, 10*time.Second, "all in the outbox", func() bool { return s.Stats().Pending == 0 })
	if err := ns.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// NATS down: the connection paths do not wait for it, the calls queue in memory.
	start := time.Now()
	for i := n; i < n+5; i++ {
		ci := ConnectInfo{Client: fmt.Sprintf("c%d", i)}
		s.Connected(ci)
		s.Disconnected(DisconnectInfo{ConnectInfo: ci, Code: 1000})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("10 calls took %v with NATS down", d)
	}
	if p := s.Stats().Pending; p == 0 {
		t.Fatal("nothing pending with NATS down")
	}
	u, _ := neturl.Parse(url)
	port, _ := strconv.Atoi(u.Port())
	runNATS(t, dir, port)
	be.status.Store(200)
	eventually(t, 20*time.Second, "every event after the restart", func() bool { return len(distinct(be.got())) == 2*(n+5) })
	checkLifecycles(t, be.got(), n+5)
}
