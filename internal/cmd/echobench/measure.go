package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// serverStats mirrors echoserver.Stats (GET /stats); servers without it fill CPUNanos and VmRSS
// from /proc.
type serverStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	VmRSS      uint64 `json:"vmrss"`
	Goroutines int    `json:"goroutines"`
	CPUNanos   int64  `json:"cpu_ns"`
}

// measurement is one scenario run once against one server.
type measurement struct {
	Round    int             `json:"round"`
	Scenario string          `json:"scenario"`
	Impl     string          `json:"impl"`
	Load     *loadgen.Result `json:"load,omitempty"` // what "wsgate bench -json" printed
	// CPU time the server used per unit of work (echoed message, handshake, delivery), in
	// microseconds (handshakes and setup included).
	ServerCPUMicrosPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	// CPU time the load generator used per unit, in microseconds: when the server's figure times
	// the rate is well under one second per second, the client was the limit.
	ClientCPUMicrosPerMsg float64 `json:"client_cpu_us_per_msg,omitempty"`
	// CPUs' worth of work done by other processes and the hypervisor (steal) meanwhile.
	ForeignCPU float64 `json:"foreign_cpu"`
	Attempts   int     `json:"attempts"`
	// Idle measurements: server memory and goroutines added per connection (NaN where the server
	// cannot say: Node has neither a Go heap nor goroutines).
	IdleConns         int     `json:"idle_conns,omitempty"`
	HeapStackPerConn  float64 `json:"heap_stack_per_conn,omitempty"`
	RSSPerConn        float64 `json:"rss_per_conn,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	Before, After     *serverStats
	// Kernel: the storm suite's listen-queue counters, their increase during the storm.
	Kernel      *listenCounters `json:"kernel,omitempty"`
	idleFigures                 // the idle suite's
	// StartFailures: why a cluster topology failed to come up before the start that was measured.
	StartFailures []string `json:"start_failures,omitempty"`
	Err           string   `json:"error,omitempty"`
}

func (m *measurement) brief() string {
	if l := m.Load; l != nil && m.IdleConns == 0 {
		s := fmt.Sprintf("%9.0f /s  p50 %7.0f µs  p99 %7.0f µs  cpu server %5.2f client %5.2f µs/unit  errors %d  noise %.2f",
			l.MsgsPerSec, l.P50Micros, l.P99Micros, m.ServerCPUMicrosPerMsg, m.ClientCPUMicrosPerMsg, l.Errors, m.ForeignCPU)
		if l.Mode == loadgen.ModeEcho {
			s += fmt.Sprintf("  jain %.3f", l.Jain)
		}
		if l.Mode == loadgen.ModeFanout {
			s += fmt.Sprintf("  lost %d", l.Lost)
		}
		if l.FirstError != "" {
			s += "  first error: " + l.FirstError
		}
		return s
	}
	s := fmt.Sprintf("%7.0f B/conn heap+stack  %7.0f B/conn RSS  %.2f goroutines/conn",
		m.HeapStackPerConn, m.RSSPerConn, m.GoroutinesPerConn)
	if m.Samples != nil {
		s += fmt.Sprintf("  (peak %.0f)  %.0f B/socket kernel  %.1f pings/conn  noise %.2f", m.HeapStackPeak, m.KernelPerSocket, m.PingsPerConn, m.ForeignCPU)
	}
	return s
}

// target is what a measurement loads: one server process, or a cluster topology's processes.
type target interface {
	// urls are the WebSocket URLs of its nodes; the publisher goes to the first.
	urls() []string
	protocol() loadgen.Protocol
	stats(gc bool) (serverStats, error)
	stop()
}

func (s *server) urls() []string             { return []string{s.wsURL()} }
func (s *server) protocol() loadgen.Protocol { return s.spec.protocol }

// clusterStarts bounds the attempts at starting a topology: a node that gives up while its
// cluster forms (wsgate's embedded cluster sometimes does, see startFailures) is retried afresh.
const clusterStarts = 3

// startTarget starts impl, fresh: a topology in the cluster suite, else one server. It notes in m
// every failed start of a topology before the one that came up.
func startTarget(ctx context.Context, c config, impl string, m *measurement) (target, error) {
	if c.suite != suiteCluster {
		return startServer(ctx, c, impl)
	}
	for attempt := 1; ; attempt++ {
		cl, err := startCluster(ctx, c, impl)
		if err == nil {
			return cl, nil
		}
		if attempt == clusterStarts || ctx.Err() != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "echobench: %s did not come up (attempt %d of %d): %v\n", impl, attempt, clusterStarts, err)
		m.StartFailures = append(m.StartFailures, err.Error())
	}
}

// measure starts a fresh server (or cluster) for impl, runs sc against it, and stops it.
func measure(ctx context.Context, c config, sc scenario, impl string) (measurement, error) {
	if c.suite == suiteStorm {
		return measureStorm(ctx, c, sc, impl)
	}
	m := measurement{Scenario: sc.name, Impl: impl}
	if sc.kind == loadgen.ModeIdle {
		srv, err := startServer(ctx, c, impl)
		if err != nil {
			return m, err
		}
		defer srv.stop()
		if c.suite == suiteIdle {
			return m, measureIdleSuite(ctx, c, sc, srv, &m)
		}
		return m, measureIdle(ctx, c, sc, srv, &m)
	}
	srv, err := startTarget(ctx, c, impl, &m)
	if err != nil {
		return m, err
	}
	defer srv.stop()
	before, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	urls := srv.urls()
	// -metrics-url off: the harness reads the server's CPU and memory itself, from /proc, for every
	// implementation alike; bench's scrape a second would cost the servers with /metrics only.
	args := []string{"bench", string(sc.kind), "-url", strings.Join(urls, ","), "-duration", c.duration.String(), "-json", "-metrics-url", "off"}
	if len(urls) > 1 {
		args = append(args, "-publish-node", "1") // alone on its node: every delivery crosses nodes
	}
	bound := c.duration + 2*time.Minute
	switch sc.kind {
	case loadgen.ModeEcho:
		args = append(args, "-c", strconv.Itoa(sc.conns), "-size", strconv.Itoa(sc.size), "-window", strconv.Itoa(sc.window))
	case loadgen.ModeConnect:
		args = append(args, "-c", strconv.Itoa(sc.conns))
	case loadgen.ModeFanout:
		args = append(args, "-subscribers", strconv.Itoa(sc.conns), "-rate", strconv.FormatFloat(sc.pubRate, 'g', -1, 64),
			"-protocol", string(srv.protocol()), "-ramp-timeout", "4m", "-drain", "10s")
		bound += 5 * time.Minute
	}
	lctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cmd := clientCmd(lctx, c, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	cpu0 := readCPU()
	err = cmd.Run()
	cpu1 := readCPU()
	// Exit status 3: the run completed with errors, which its JSON counts.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return m, fmt.Errorf("wsgate bench: %w", err)
	}
	var lr loadgen.Result
	if err := json.Unmarshal(out.Bytes(), &lr); err != nil {
		return m, fmt.Errorf("wsgate bench output: %w", err)
	}
	after, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	m.Load, m.Before, m.After = &lr, &before, &after
	serverCPU := time.Duration(after.CPUNanos - before.CPUNanos)
	ps := cmd.ProcessState
	clientCPU := ps.UserTime() + ps.SystemTime()
	if lr.Messages > 0 {
		m.ServerCPUMicrosPerMsg = float64(serverCPU.Nanoseconds()) / 1e3 / float64(lr.Messages)
		m.ClientCPUMicrosPerMsg = float64(clientCPU.Nanoseconds()) / 1e3 / float64(lr.Messages)
	}
	m.ForeignCPU = foreignCPU(cpu0, cpu1, clientCPU+serverCPU)
	return m, nil
}

// measureIdle opens sc.conns connections and reads what they added to the server's memory and
// goroutines, after a garbage collection on both sides of the comparison.
func measureIdle(ctx context.Context, c config, sc scenario, srv *server, m *measurement) error {
	before, err := srv.stats(true)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := startIdleClient(lctx, c, sc.conns, "-url", srv.wsURL(), "-duration", "90s")
	if err != nil {
		return err
	}
	defer cl.end()
	// Wait until the server has settled: nothing moving (goroutines for Go servers, resident
	// memory for the others), and not before 3 s, so that wsgate has parked the connections.
	openedAt := time.Now()
	prev := -1
	for range 100 {
		st, err := srv.stats(false)
		if err != nil {
			return err
		}
		cur := st.Goroutines
		if before.Goroutines == 0 { // not a Go server
			cur = int(st.VmRSS >> 16)
		}
		if cur == prev && time.Since(openedAt) >= 3*time.Second {
			break
		}
		prev = cur
		time.Sleep(300 * time.Millisecond)
	}
	after, err := srv.stats(true)
	if err != nil {
		return err
	}
	n := float64(sc.conns)
	m.IdleConns = sc.conns
	m.Before, m.After = &before, &after
	m.HeapStackPerConn = (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / n
	m.RSSPerConn = (float64(after.VmRSS) - float64(before.VmRSS)) / n
	m.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / n
	return nil
}

// idleClient is "wsgate bench idle -hold-stdin" holding its connections open.
type idleClient struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Reader // what it prints after "open N"
	ended bool
}

// startIdleClient starts the load generator's idle mode with conns connections and args, and
// waits until it says every one is open.
func startIdleClient(ctx context.Context, c config, conns int, args ...string) (*idleClient, error) {
	args = append([]string{"bench", "idle", "-c", strconv.Itoa(conns), "-source-ips", "4", "-hold-stdin", "-json", "-metrics-url", "off"}, args...)
	cmd := clientCmd(ctx, c, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cl := &idleClient{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := cl.out.ReadString('\n')
	var opened int
	if err == nil {
		_, err = fmt.Sscanf(line, "open %d", &opened)
	}
	if err != nil || opened != conns {
		cl.end()
		return nil, fmt.Errorf("wsgate bench idle: %q (%v), want \"open %d\"", strings.TrimSpace(line), err, conns)
	}
	return cl, nil
}

// end lets go of the connections (the load generator closes them and exits) and returns what
// it printed then, once it has exited; later calls do nothing.
func (cl *idleClient) end() ([]byte, error) {
	if cl.ended {
		return nil, nil
	}
	cl.ended = true
	_ = cl.stdin.Close()
	rest, _ := io.ReadAll(cl.out)
	return rest, cl.cmd.Wait()
}

// clientCmd runs the load generator ("wsgate bench"), pinned to the client CPUs.
func clientCmd(ctx context.Context, c config, args ...string) *exec.Cmd {
	return pinned(ctx, c, c.clientCPU, filepath.Join(c.bin, "wsgate"), args...)
}

func pinned(ctx context.Context, c config, cpus, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if c.pin {
		cmd = exec.CommandContext(ctx, "taskset", append([]string{"-c", cpus, bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// On cancellation, ask politely first; WaitDelay then kills.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}
