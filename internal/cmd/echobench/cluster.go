package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The cluster suite measures one node against three, and against Centrifugo in the same
// topologies: each contestant is a topology of processes (the nodes, and the broker they share),
// all started fresh for each measurement, all pinned to the server CPUs, and measured together
// (their CPU time and resident memory are summed). The load generator publishes on the first node
// and deals the subscribers over the others, so that in a cluster every delivery crosses nodes.

// topology is one contestant of the cluster suite.
type topology struct {
	server string // "wsgate" or "centrifugo"
	nodes  int
	broker string   // brokerMemory, brokerNATS, brokerEmbedded or brokerRedis
	args   []string // more flags for each wsgate node
}

// Brokers of a topology.
const (
	brokerMemory   = "memory"   // in the node's process: one node only
	brokerNATS     = "nats"     // a cluster of natsServers nats-server processes, one per node
	brokerEmbedded = "embedded" // wsgate's embedded NATS cluster (-cluster-listen, -cluster-peers)
	brokerRedis    = "redis"    // one redis-server (Debian's), Centrifugo's Redis engine
)

// natsServers is the size of the NATS cluster the harness starts: one server per node, each node
// connected to its own, as a deployment would colocate them.
const natsServers = 3

// natsVersion is the nats-server the suite builds into -bin.
const natsVersion = "v2.15.2"

// clusterTopologies: wsgate's nodes with their defaults, which keep the history in one copy on
// an external NATS (-nats) and in three on the embedded cluster; "wsgate-embed3-r1" keeps one
// there too, as wsgate-nats3 does (and as one redis-server does for Centrifugo).
var clusterTopologies = map[string]topology{
	"wsgate":            {"wsgate", 1, brokerMemory, nil},
	"wsgate-nats3":      {"wsgate", 3, brokerNATS, nil},
	"wsgate-embed3":     {"wsgate", 3, brokerEmbedded, nil},
	"wsgate-embed3-r1":  {"wsgate", 3, brokerEmbedded, []string{"-replicas", "1"}},
	"centrifugo":        {"centrifugo", 1, brokerMemory, nil},
	"centrifugo-nats3":  {"centrifugo", 3, brokerNATS, nil},
	"centrifugo-redis3": {"centrifugo", 3, brokerRedis, nil},
}

// defaultClusterImpls are the topologies the suite runs unless -impls says otherwise: both of
// wsgate's clusters with their defaults, the embedded one also with one replica, as -nats keeps.
var defaultClusterImpls = []string{"wsgate", "wsgate-nats3", "wsgate-embed3", "wsgate-embed3-r1", "centrifugo-nats3", "centrifugo-redis3"}

// centrifugoConfig is each Centrifugo topology's file in bench/centrifugo: the same channel
// settings as the fan-out suite's (anonymous subscribe and publish, history of 100 for 5 minutes)
// but with the NATS broker, which keeps no history (Centrifugo documents it as PUB/SUB only:
// history off, presence in memory), or with the Redis engine (history in Redis).
var centrifugoConfig = map[string]string{
	brokerMemory: "config.json",
	brokerNATS:   "cluster-nats.json",
	brokerRedis:  "cluster-redis.json",
}

// cluster is one running topology: its processes, the brokers first, and its nodes' URLs.
type cluster struct {
	name  string
	dir   string    // logs and data of every process; removed by stop
	procs []*server // in the order started
	nodes []*server
	proto loadgen.Protocol
}

func (cl *cluster) urls() []string {
	var u []string
	for _, n := range cl.nodes {
		u = append(u, n.wsURL())
	}
	return u
}

func (cl *cluster) protocol() loadgen.Protocol { return cl.proto }

// stats sums CPU time and resident memory over every process of the topology.
func (cl *cluster) stats(bool) (serverStats, error) {
	var st serverStats
	for _, p := range cl.procs {
		st.CPUNanos += procCPU(p.pid())
		rss, err := loadgen.ReadRSS(p.pid())
		if err != nil {
			return st, fmt.Errorf("%s: %w", cl.name, err)
		}
		st.VmRSS += rss
	}
	return st, nil
}

// stop ends the nodes, then the brokers (each by its PID), and removes the topology's files.
func (cl *cluster) stop() {
	for i := len(cl.procs) - 1; i >= 0; i-- {
		cl.procs[i].stop()
	}
	_ = os.RemoveAll(cl.dir)
}

// start launches one process of the topology, its stderr in dir/name.log.
func (cl *cluster) start(name string, cmd *exec.Cmd, spec serverSpec, addr string) (*server, error) {
	logf, err := os.Create(filepath.Join(cl.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	s, err := launch(name, cmd, spec, addr, logf)
	if err != nil {
		return nil, err
	}
	cl.procs = append(cl.procs, s)
	return s, nil
}

// logTail is the end of a process's log, for an error that says why it did not come up.
func (cl *cluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(cl.dir, name+".log"))
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

// startCluster starts topology impl: its broker, its nodes, and checks that a publication on the
// first node reaches subscribers on the others before it returns.
func startCluster(ctx context.Context, c config, impl string) (_ *cluster, err error) {
	t, ok := clusterTopologies[impl]
	if !ok {
		return nil, fmt.Errorf("unknown topology %q", impl)
	}
	dir, err := os.MkdirTemp("", "echobench-"+impl+"-")
	if err != nil {
		return nil, err
	}
	cl := &cluster{name: impl, dir: dir, proto: pubsubServers[t.server].protocol}
	defer func() {
		if err != nil {
			cl.stop()
		}
	}()
	var brokerURLs []string
	switch t.broker {
	case brokerNATS:
		brokerURLs, err = cl.startNATS(ctx, c)
	case brokerRedis:
		brokerURLs, err = cl.startRedis(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * t.nodes) // an HTTP port per node, and a cluster port for embedded NATS
	if err != nil {
		return nil, err
	}
	var peers, names []string
	for i := range t.nodes {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(ports[t.nodes+i]))
	}
	for i := range t.nodes {
		name := fmt.Sprintf("%s-%d", t.server, i+1)
		addr := "127.0.0.1:" + strconv.Itoa(ports[i])
		var cmd *exec.Cmd
		if t.server == "centrifugo" {
			cmd = pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, "centrifugo"),
				"--config", filepath.Join(c.benchDir, "centrifugo", centrifugoConfig[t.broker]))
			cmd.Env = append(os.Environ(), "CENTRIFUGO_HTTP_SERVER_PORT="+strconv.Itoa(ports[i]), "CENTRIFUGO_NODE_NAME="+name)
			switch t.broker {
			case brokerNATS:
				cmd.Env = append(cmd.Env, "CENTRIFUGO_BROKER_NATS_URL="+brokerURLs[i%len(brokerURLs)])
			case brokerRedis:
				cmd.Env = append(cmd.Env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS="+brokerURLs[0])
			}
		} else {
			args := append([]string{"serve", "-addr", addr, "-log-level", "warn"}, t.args...)
			switch t.broker {
			case brokerNATS:
				args = append(args, "-nats", brokerURLs[i%len(brokerURLs)])
			case brokerEmbedded:
				args = append(args, "-node", name, "-data-dir", filepath.Join(dir, name),
					"-cluster-listen", peers[i], "-cluster-peers", strings.Join(others(peers, i), ","))
			}
			cmd = pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, "wsgate"), args...)
		}
		s, err := cl.start(name, cmd, pubsubServers[t.server], addr)
		if err != nil {
			return nil, err
		}
		cl.nodes = append(cl.nodes, s)
		names = append(names, name)
	}
	// The nodes of an embedded cluster may wait for each other before they listen: all are
	// started before any is waited for.
	for i, n := range cl.nodes {
		if err := waitProcListening(n, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w; its log: %s", names[i], err, cl.logTail(names[i]))
		}
	}
	if len(cl.nodes) > 1 {
		if err := probe(ctx, cl.urls(), cl.proto, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", impl, err)
		}
	}
	return cl, nil
}

// others is peers without its i-th.
func others(peers []string, i int) []string {
	return append(append([]string{}, peers[:i]...), peers[i+1:]...)
}

// startNATS starts a cluster of natsServers nats-server processes with JetStream, and waits
// until each reports itself healthy (routes up, JetStream with a meta leader). It returns their
// client URLs.
func (cl *cluster) startNATS(ctx context.Context, c config) ([]string, error) {
	ports, err := freePorts(3 * natsServers) // client, cluster, monitoring
	if err != nil {
		return nil, err
	}
	var routes, urls []string
	for i := range natsServers {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(ports[natsServers+i]))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	var monitors []string
	for i := range natsServers {
		name := "nats-" + strconv.Itoa(i+1)
		monitors = append(monitors, "127.0.0.1:"+strconv.Itoa(ports[2*natsServers+i]))
		cmd := pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, "nats-server"), "-a", "127.0.0.1",
			"-p", strconv.Itoa(ports[i]), "-m", strconv.Itoa(ports[2*natsServers+i]), "-n", name,
			"--cluster_name", "echobench", "--cluster", routes[i], "--routes", strings.Join(others(routes, i), ","),
			"-js", "-sd", filepath.Join(cl.dir, name))
		if _, err := cl.start(name, cmd, serverSpec{}, "127.0.0.1:"+strconv.Itoa(ports[i])); err != nil {
			return nil, err
		}
	}
	for i, m := range monitors {
		if err := waitHealthy(ctx, "http://"+m+"/healthz", 60*time.Second); err != nil {
			name := "nats-" + strconv.Itoa(i+1)
			return nil, fmt.Errorf("%s: %w; its log: %s", name, err, cl.logTail(name))
		}
	}
	return urls, nil
}

// startRedis starts one redis-server on a loopback port, without persistence.
func (cl *cluster) startRedis(ctx context.Context, c config) ([]string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no redis-server on PATH (apt-get install -y redis-server)")
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := pinned(ctx, c, c.serverCPU, bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
		"--save", "", "--appendonly", "no", "--dir", cl.dir, "--loglevel", "warning", "--daemonize", "no")
	s, err := cl.start("redis", cmd, serverSpec{}, addr)
	if err != nil {
		return nil, err
	}
	if err := waitProcListening(s, 30*time.Second); err != nil {
		return nil, fmt.Errorf("redis: %w; its log: %s", err, cl.logTail("redis"))
	}
	return []string{"redis://" + addr}, nil
}

// waitProcListening waits until s accepts TCP connections, and fails at once if it exits.
func waitProcListening(s *server, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("exited before listening on %s", s.addr)
		default:
		}
		err := waitListening(s.addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, url string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := healthClient.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status + " " + strings.TrimSpace(string(b))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %v: %s", bound, last)
}

// probe publishes on the first node to a subscriber on every other node, on a channel of its
// own, until one short run loses nothing: the cluster is formed and delivers across nodes.
func probe(ctx context.Context, urls []string, proto loadgen.Protocol, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		res, err := loadgen.Fanout(ctx, loadgen.Config{URL: urls[0], Nodes: urls, Protocol: proto, Channel: "echobench-probe",
			Subscribers: len(urls) - 1, Rate: 20, Duration: 250 * time.Millisecond, Drain: 3 * time.Second,
			ConnectTimeout: 5 * time.Second, RampTimeout: 10 * time.Second})
		switch {
		case err != nil:
			last = err.Error()
		case res.Errors == 0 && res.Messages > 0:
			return nil
		default:
			last = fmt.Sprintf("%d of %d delivered; %s", res.Messages, res.Published*uint64(len(urls)-1), res.FirstError)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("no delivery across nodes within %v: %s", bound, last)
}
