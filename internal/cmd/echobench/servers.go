package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The servers a run can compare. Every one runs alone in a process pinned to the server CPUs and
// is reached on 127.0.0.1. The echo servers keep one contract (internal/echoserver.Serve): they
// print their address as their first line, echo at /ws and answer GET /stats; the pub/sub
// servers of the fanout suite are started on a free port and read through /proc.
var echoServers = map[string]serverSpec{
	"gws":     {bin: "echoserve", args: []string{"-impl", "gws"}, stats: true},
	"gorilla": {bin: "echoserve", args: []string{"-impl", "gorilla"}, stats: true},
	"wsgate":  {bin: "echoserve", args: []string{"-impl", "wsgate"}, stats: true},
	// wsgate with a reader goroutine per connection (Config.ParkAfter -1): the runtime before parking.
	"wsgate-goroutine": {bin: "echoserve", args: []string{"-impl", "wsgate-goroutine"}, stats: true},
	baseImpl:           {bin: "echoserve-base", args: []string{"-impl", "wsgate"}, stats: true},
	"melody":           {bin: "echoserve-melody", args: []string{"-impl", "melody"}, stats: true},
	"ws":               {node: true, stats: true},
}

// pubsubServers are the fanout suite's: "wsgate serve" (wsgate.v1 on the hub and the in-memory
// broker, default settings but the log level) and Centrifugo v6 configured by
// bench/centrifugo/config.json (anonymous subscribe and publish, the same history as wsgate's).
var pubsubServers = map[string]serverSpec{
	"wsgate":     {bin: "wsgate", path: "/ws", protocol: loadgen.ProtoWsgate},
	"centrifugo": {bin: "centrifugo", path: "/connection/websocket", protocol: loadgen.ProtoCentrifugo},
	baseImpl:     {bin: "wsgate-base", path: "/ws", protocol: loadgen.ProtoWsgate}, // -base's "wsgate serve"
}

// idleServers are the idle suite's: the echo servers with heartbeats (gorilla has none) and
// Centrifugo configured by bench/centrifugo/idle.json (anonymous connections, Prometheus metrics
// and pprof on its port), all pinging every -ping-interval.
var idleServers = map[string]serverSpec{
	"wsgate":           echoServers["wsgate"],
	"wsgate-goroutine": echoServers["wsgate-goroutine"],
	"gws":              echoServers["gws"],
	baseImpl:           echoServers[baseImpl],
	"centrifugo":       pubsubServers["centrifugo"],
}

func specsFor(suite string) map[string]serverSpec {
	switch suite {
	case suiteStorm:
		return stormServers
	case suiteFanout:
		return pubsubServers
	case suiteIdle:
		return idleServers
	}
	return echoServers
}

// knownImpl reports whether suite has a server (or, for the cluster suite, a topology) impl.
func knownImpl(suite, impl string) bool {
	if suite == suiteCluster {
		_, ok := clusterTopologies[impl]
		return ok
	}
	_, ok := specsFor(suite)[impl]
	return ok
}

// serverSpec says how to start one server and what it offers.
type serverSpec struct {
	bin      string   // in -bin
	args     []string // for echoserve binaries
	node     bool     // bench/node/server.js
	stats    bool     // GET /stats
	path     string   // WebSocket path of a pub/sub server
	protocol loadgen.Protocol
}

// server is one running server process.
type server struct {
	cmd     *exec.Cmd
	spec    serverSpec
	addr    string
	started chan struct{} // closed once the address is known
	done    chan struct{} // closed once the process has been waited for
}

func startServer(ctx context.Context, c config, impl string) (*server, error) {
	spec, ok := specsFor(c.suite)[impl]
	if !ok {
		return nil, fmt.Errorf("unknown server %q", impl)
	}
	var cmd *exec.Cmd
	addr := ""
	switch {
	case spec.node:
		cmd = pinned(ctx, c, c.serverCPU, "node", "--expose-gc", filepath.Join(c.benchDir, "node", "server.js"),
			"--addr", "127.0.0.1:0", "--lifetime", "600s")
	case spec.path != "": // a pub/sub server: on a free port, known before it starts
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
		if impl == "centrifugo" {
			conf := "config.json"
			env := []string{"CENTRIFUGO_HTTP_SERVER_PORT=" + strconv.Itoa(port)}
			if c.suite == suiteIdle {
				// Its pong timeout must be shorter than its ping interval (Centrifugo refuses it otherwise).
				conf = "idle.json"
				env = append(env, "CENTRIFUGO_CLIENT_PING_INTERVAL="+c.pingInterval.String(),
					"CENTRIFUGO_CLIENT_PONG_TIMEOUT="+(c.pingInterval*4/5).String())
			}
			cmd = pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, spec.bin), "--config", filepath.Join(c.benchDir, "centrifugo", conf))
			cmd.Env = append(os.Environ(), env...)
		} else {
			cmd = pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, spec.bin), "serve", "-addr", addr, "-log-level", "warn")
		}
	default:
		args := append(slices.Clip(spec.args), "-addr", "127.0.0.1:0", "-lifetime", "10m")
		if c.suite == suiteIdle {
			args = append(args, "-ping-interval", c.pingInterval.String())
		}
		cmd = pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, spec.bin), args...)
	}
	s, err := launch(impl, cmd, spec, addr, os.Stderr)
	if err != nil || addr == "" {
		return s, err
	}
	if err := waitListening(addr, 30*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w", impl, err)
	}
	return s, nil
}

// launch starts cmd, one server process (or a broker of a cluster), its stderr to stderr. When
// addr is empty the process prints its address as its first line, which launch waits for.
func launch(name string, cmd *exec.Cmd, spec serverSpec, addr string, stderr io.Writer) (*server, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &server{cmd: cmd, spec: spec, addr: addr, started: make(chan struct{}), done: make(chan struct{})}
	out := bufio.NewReader(stdout)
	go func() { // owner: s; ends when the process does
		<-s.started
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(s.done)
	}()
	if addr != "" {
		close(s.started)
		return s, nil
	}
	line, err := out.ReadString('\n')
	close(s.started)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: no address: %w", name, err)
	}
	s.addr = strings.TrimSpace(line)
	return s, nil
}

func (s *server) wsURL() string {
	if s.spec.path != "" {
		return "ws://" + s.addr + s.spec.path
	}
	return "ws://" + s.addr + "/ws"
}

func (s *server) pid() int { return s.cmd.Process.Pid } // taskset execs the server: same process

// stop ends the server by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() {
	p := s.cmd.Process
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-s.done
	}
}

var statsClient = &http.Client{Timeout: 30 * time.Second}

// stats reads the server's figures: GET /stats where it has one, else what /proc says (CPU time
// and resident memory).
func (s *server) stats(gc bool) (serverStats, error) {
	var st serverStats
	if !s.spec.stats {
		st.CPUNanos = procCPU(s.pid())
		rss, err := loadgen.ReadRSS(s.pid())
		st.VmRSS = rss
		return st, err
	}
	u := "http://" + s.addr + "/stats"
	if gc {
		u += "?gc=1"
	}
	resp, err := statsClient.Get(u)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, errors.New("stats: " + resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// procCPU returns the user and system CPU time of process pid, from /proc/PID/stat (clock ticks).
func procCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after its closing one.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the line: utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	return (ut + st) * int64(time.Second) / clockTick
}

// freePort asks the kernel for a free loopback port. Another process could take it before the
// server binds it; the server then fails to start and the measurement reports that.
func freePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// freePorts asks for n distinct free loopback ports (all held until all are known).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitListening waits until addr accepts TCP connections.
func waitListening(addr string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %w", addr, bound, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
