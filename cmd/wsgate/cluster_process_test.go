package main

// `wsgate serve` on NATS, as processes: three nodes that embed a clustered NATS server, and
// nodes on an external nats-server built from the module (nothing preinstalled).

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wstest"
)

// natsServerBinary builds nats-server from the module's requirement (a tool of go.mod) once per
// test run.
func natsServerBinary(t *testing.T) string {
	return buildBinary(t, "github.com/nats-io/nats-server/v2", "nats-server")
}

// others is addrs without addrs[i], comma-separated.
func others(addrs []string, i int) string {
	return strings.Join(slices.Delete(slices.Clone(addrs), i, i+1), ",")
}

// embeddedCluster is n `wsgate serve -cluster-listen` processes.
type embeddedCluster struct {
	routes, dirs []string
	nodes        []*process
}

func startEmbeddedCluster(t *testing.T, n int, extra ...string) *embeddedCluster {
	t.Helper()
	c := &embeddedCluster{routes: wstest.FreeAddrs(t, n)}
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.nodes = append(c.nodes, c.launchNode(t, i, extra...))
	}
	for _, p := range c.nodes {
		p.await(t, 60*time.Second)
	}
	return c
}

func (c *embeddedCluster) launchNode(t *testing.T, i int, extra ...string) *process {
	return launch(t, append([]string{"-cluster-listen", c.routes[i], "-cluster-peers", others(c.routes, i),
		"-cluster-name", "test", "-data-dir", c.dirs[i], "-node", fmt.Sprintf("n%d", i+1)}, extra...)...)
}

// mustDial connects to p, closed at cleanup.
func mustDial(t *testing.T, p *process) *v1Client {
	t.Helper()
	c, err := dialV1(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// publishRetrying publishes data on channel through c, retrying for up to 20 s while the
// cluster answers 201 (unavailable: a stream leader being elected).
func publishRetrying(t *testing.T, c *v1Client, channel string, data any) *v1Result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.publish(channel, data)
		var ve *v1Error
		if err == nil {
			return r
		}
		if !errors.As(err, &ve) || ve.Code != 201 || time.Now().After(deadline) {
			t.Fatalf("publish %v: %v", data, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// expectPubs reads the next pushes of c and checks they are the publications at offsets, with
// data "m<offset>".
func expectPubs(t *testing.T, who string, c *v1Client, offsets ...uint64) {
	t.Helper()
	for _, o := range offsets {
		p, err := c.nextPub(10 * time.Second)
		if err != nil {
			t.Fatalf("%s: waiting for offset %d: %v", who, o, err)
		}
		if p.Push != "pub" || p.Offset != o || string(p.Data) != fmt.Sprintf(`"m%d"`, o) {
			t.Fatalf("%s: got %+v (data %s), want the publication at offset %d", who, p, p.Data, o)
		}
	}
}

// TestEmbeddedClusterOfThreeProcesses: three `wsgate serve -cluster-listen` processes form a
// cluster; publications cross it; history is shared; a node killed with SIGKILL leaves the other
// two serving (the R3 stream keeps its quorum), and restarted on its data directory it rejoins
// and its subscribers recover what they missed.
func TestEmbeddedClusterOfThreeProcesses(t *testing.T) {
	start := time.Now()
	c := startEmbeddedCluster(t, 3)
	t.Logf("%v: the three nodes listen", time.Since(start).Round(time.Millisecond))
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	for i, p := range c.nodes {
		r := p.waitLog("joined cluster")
		if r == nil || r["cluster"] != "test" || r["node"] != fmt.Sprintf("n%d", i+1) || r["replicas"] != float64(3) {
			t.Fatalf("node %d: joined cluster log %v", i+1, r)
		}
		if r := p.waitLog("broker"); r == nil || r["kind"] != "nats" {
			t.Fatalf("node %d: broker log %v", i+1, r)
		}
	}

	pub := mustDial(t, n1)
	sub2, sub3 := mustDial(t, n2), mustDial(t, n3)
	for _, s := range []*v1Client{sub2, sub3} {
		if _, err := s.subscribe("news", nil, false); err != nil {
			t.Fatal(err)
		}
	}
	var epoch string
	for i := uint64(1); i <= 5; i++ {
		r := publishRetrying(t, pub, "news", fmt.Sprintf("m%d", i))
		if r.Offset != i {
			t.Fatalf("publication %d acknowledged at offset %d", i, r.Offset)
		}
		epoch = r.Epoch
	}
	expectPubs(t, "node 2", sub2, 1, 2, 3, 4, 5)
	expectPubs(t, "node 3", sub3, 1, 2, 3, 4, 5)
	h, err := mustDial(t, n3).history("news", nil, 100)
	if err != nil || h.Epoch != epoch || h.Offset != 5 || len(h.Publications) != 5 || string(h.Publications[4].Data) != `"m5"` {
		t.Fatalf("history on node 3: %+v, %v", h, err)
	}

	// kill -9 of node 3: nodes 1 and 2 go on publishing and delivering.
	t.Logf("%v: killing node 3", time.Since(start).Round(time.Millisecond))
	n3.kill()
	for i := uint64(6); i <= 10; i++ {
		if r := publishRetrying(t, pub, "news", fmt.Sprintf("m%d", i)); r.Offset != i || r.Epoch != epoch {
			t.Fatalf("publication %d after the kill acknowledged at %s/%d", i, r.Epoch, r.Offset)
		}
	}
	expectPubs(t, "node 2 after node 3 died", sub2, 6, 7, 8, 9, 10)

	// Node 3 restarted on its data directory rejoins; a subscriber recovers from where it was.
	t.Logf("%v: restarting node 3", time.Since(start).Round(time.Millisecond))
	n3 = c.launchNode(t, 2)
	n3.await(t, 60*time.Second)
	t.Logf("%v: node 3 listens again", time.Since(start).Round(time.Millisecond))
	sub3 = mustDial(t, n3)
	r, err := sub3.subscribe("news", &v1Position{Epoch: epoch, Offset: 5}, false)
	if err != nil || !r.Recovered || r.Offset != 10 || len(r.Publications) != 5 || r.Publications[0].Offset != 6 {
		t.Fatalf("recovering subscribe on the restarted node 3: %+v, %v", r, err)
	}
	publishRetrying(t, pub, "news", "m11")
	expectPubs(t, "restarted node 3", sub3, 11)
	expectPubs(t, "node 2", sub2, 11)

	// SIGTERM: the node closes its clients with 1001, then its broker and its NATS server, and
	// exits 0.
	if err := n3.terminate(15 * time.Second); err != nil {
		t.Fatalf("node 3 after SIGTERM: %v; logs:\n%s", err, n3.logText())
	}
	if n3.waitLog("stopped") == nil {
		t.Errorf("node 3 did not log stopped")
	}
	if _, err := sub3.nextPub(5 * time.Second); err == nil || !strings.Contains(err.Error(), "1001") {
		t.Errorf("node 3's subscriber after SIGTERM: %v, want close 1001", err)
	}
}

// natsProcess is a nats-server process of the module's build, killed (by PID) at cleanup.
type natsProcess struct {
	cmd      *exec.Cmd
	port     string   // client port
	args     []string // to restart it as it was
	killOnce sync.Once
}

// startNATSServer runs nats-server with JetStream in storeDir, its client port on loopback at
// port; more args (cluster flags) go after those. It returns once the client port accepts.
func startNATSServer(t *testing.T, port, storeDir string, args ...string) *natsProcess {
	t.Helper()
	return runNATS(t, port, append([]string{"-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", port}, args...))
}

func runNATS(t *testing.T, port string, args []string) *natsProcess {
	t.Helper()
	n := &natsProcess{cmd: exec.Command(natsServerBinary(t), args...), port: port, args: args}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.kill)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening on port %s within 10s", port)
		}
	}
}

// kill stops the server with SIGKILL and reaps it.
func (n *natsProcess) kill() {
	n.killOnce.Do(func() {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
	})
}

// restart starts the server again as it was, on the same store.
func (n *natsProcess) restart(t *testing.T) *natsProcess {
	t.Helper()
	n.kill()
	return runNATS(t, n.port, n.args)
}

// TestNodesOnExternalNATS: two `wsgate serve -nats` processes on one nats-server share channels
// and history.
func TestNodesOnExternalNATS(t *testing.T) {
	_, port, _ := net.SplitHostPort(wstest.FreeAddrs(t, 1)[0])
	startNATSServer(t, port, t.TempDir())
	url := "nats://127.0.0.1:" + port
	var nodes []*process
	for i := range 2 {
		nodes = append(nodes, launch(t, "-nats", url, "-node", fmt.Sprintf("x%d", i+1)))
	}
	for _, p := range nodes {
		p.await(t, 30*time.Second)
		if r := p.waitLog("broker"); r == nil || r["kind"] != "nats" || r["nats"] != url || r["replicas"] != float64(1) {
			t.Fatalf("broker log %v", r)
		}
	}
	sub := mustDial(t, nodes[1])
	if _, err := sub.subscribe("ext", nil, false); err != nil {
		t.Fatal(err)
	}
	pub := mustDial(t, nodes[0])
	for i := uint64(1); i <= 3; i++ {
		publishRetrying(t, pub, "ext", fmt.Sprintf("m%d", i))
	}
	expectPubs(t, "node 2", sub, 1, 2, 3)
	if h, err := sub.history("ext", &v1Position{}, 10); err != nil || len(h.Publications) != 3 || !h.Complete {
		t.Fatalf("history on node 2: %+v, %v", h, err)
	}
}

// TestSIGTERMWhileWaitingForTheCluster: a node whose peers never come stops at once on SIGTERM,
// with exit status 0.
func TestSIGTERMWhileWaitingForTheCluster(t *testing.T) {
	routes := wstest.FreeAddrs(t, 3)
	p := launch(t, "-cluster-listen", routes[0], "-cluster-peers", others(routes, 0), "-data-dir", t.TempDir())
	if p.waitLog("waiting for the cluster") == nil {
		t.Fatalf("no waiting log; logs:\n%s", p.logText())
	}
	if err := p.terminate(10 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v; logs:\n%s", err, p.logText())
	}
	if p.waitLog("stopped before the cluster was ready") == nil {
		t.Errorf("no log of the stop; logs:\n%s", p.logText())
	}
}
