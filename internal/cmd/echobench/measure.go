package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// serverStats mirrors echoserve's GET /stats.
type serverStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	VmRSS      uint64 `json:"vmrss"`
	Goroutines int    `json:"goroutines"`
	CPUNanos   int64  `json:"cpu_ns"`
}

// loadResult mirrors the part of echoload -json that the report uses.
type loadResult struct {
	Messages   uint64  `json:"messages"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	PerConnMin uint64  `json:"per_conn_min"`
	PerConnMed uint64  `json:"per_conn_median"`
	PerConnMax uint64  `json:"per_conn_max"`
	Jain       float64 `json:"jain"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// measurement is one scenario run once against one implementation.
type measurement struct {
	Round    int         `json:"round"`
	Scenario string      `json:"scenario"`
	Impl     string      `json:"impl"`
	Load     *loadResult `json:"load,omitempty"`
	// CPU time the server used per echoed message, in microseconds (handshakes included).
	ServerCPUMicrosPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	// CPU time the load generator used per echoed message, in microseconds: when the server's
	// figure times msgs/s is well under one second per second, the client was the limit.
	ClientCPUMicrosPerMsg float64 `json:"client_cpu_us_per_msg,omitempty"`
	// CPUs' worth of work done by other processes and the hypervisor (steal) meanwhile.
	ForeignCPU float64 `json:"foreign_cpu"`
	Attempts   int     `json:"attempts"`
	// Idle measurements: server memory and goroutines added per connection.
	IdleConns         int     `json:"idle_conns,omitempty"`
	HeapStackPerConn  float64 `json:"heap_stack_per_conn,omitempty"`
	RSSPerConn        float64 `json:"rss_per_conn,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	Before, After     *serverStats
	Err               string `json:"error,omitempty"`
}

func (m *measurement) brief() string {
	if m.Load != nil {
		return fmt.Sprintf("%9.0f msgs/s  p99 %7.0f µs  cpu server %5.2f client %5.2f µs/msg  jain %.3f  errors %d  noise %.2f",
			m.Load.MsgsPerSec, m.Load.P99Micros, m.ServerCPUMicrosPerMsg, m.ClientCPUMicrosPerMsg, m.Load.Jain, m.Load.Errors, m.ForeignCPU)
	}
	return fmt.Sprintf("%7.0f B/conn heap+stack  %7.0f B/conn RSS  %.2f goroutines/conn",
		m.HeapStackPerConn, m.RSSPerConn, m.GoroutinesPerConn)
}

// measure starts a fresh server for impl, runs sc against it, and stops it.
func measure(ctx context.Context, c config, sc scenario, impl string) (measurement, error) {
	m := measurement{Scenario: sc.name, Impl: impl}
	srv, err := startServer(ctx, c, impl)
	if err != nil {
		return m, err
	}
	defer srv.stop()
	if sc.idle > 0 {
		return m, measureIdle(ctx, c, sc, srv, &m)
	}
	before, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	args := []string{"-url", srv.wsURL(), "-conns", fmt.Sprint(sc.conns), "-size", fmt.Sprint(sc.size),
		"-window", fmt.Sprint(sc.window), "-duration", c.duration.String(), "-json"}
	lctx, cancel := context.WithTimeout(ctx, c.duration+2*time.Minute)
	defer cancel()
	cmd := clientCmd(lctx, c, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	cpu0 := readCPU()
	err = cmd.Run()
	cpu1 := readCPU()
	if err != nil {
		return m, fmt.Errorf("echoload: %w", err)
	}
	var lr loadResult
	if err := json.Unmarshal(out.Bytes(), &lr); err != nil {
		return m, fmt.Errorf("echoload output: %w", err)
	}
	after, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	m.Load, m.Before, m.After = &lr, &before, &after
	if lr.Messages > 0 {
		m.ServerCPUMicrosPerMsg = float64(after.CPUNanos-before.CPUNanos) / 1e3 / float64(lr.Messages)
	}
	ps := cmd.ProcessState
	clientCPU := ps.UserTime() + ps.SystemTime()
	if lr.Messages > 0 {
		m.ClientCPUMicrosPerMsg = float64(clientCPU.Nanoseconds()) / 1e3 / float64(lr.Messages)
	}
	m.ForeignCPU = foreignCPU(cpu0, cpu1, clientCPU+time.Duration(after.CPUNanos-before.CPUNanos))
	return m, nil
}

// measureIdle opens sc.idle connections and reads what they added to the server's memory and
// goroutines, after a garbage collection on both sides of the comparison.
func measureIdle(ctx context.Context, c config, sc scenario, srv *server, m *measurement) error {
	before, err := srv.stats(true)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := clientCmd(lctx, c, "-url", srv.wsURL(), "-idle", fmt.Sprint(sc.idle), "-duration", "90s",
		"-source-ips", "4")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = stdin.Close() // echoload closes its connections and exits
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("echoload -idle: %w", err)
	}
	var opened int
	if _, err := fmt.Sscanf(line, "open %d", &opened); err != nil || opened != sc.idle {
		return fmt.Errorf("echoload -idle: %q, want \"open %d\"", strings.TrimSpace(line), sc.idle)
	}
	// Wait until the server has settled: every connection's goroutine started, nothing moving.
	prev := -1
	for i := 0; i < 100; i++ {
		st, err := srv.stats(false)
		if err != nil {
			return err
		}
		if st.Goroutines == prev && st.Goroutines >= before.Goroutines+sc.idle/2 {
			break
		}
		prev = st.Goroutines
		time.Sleep(300 * time.Millisecond)
	}
	after, err := srv.stats(true)
	if err != nil {
		return err
	}
	n := float64(sc.idle)
	m.IdleConns = sc.idle
	m.Before, m.After = &before, &after
	m.HeapStackPerConn = (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / n
	m.RSSPerConn = (float64(after.VmRSS) - float64(before.VmRSS)) / n
	m.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / n
	return nil
}

// clientCmd runs echoload, pinned to the client CPUs.
func clientCmd(ctx context.Context, c config, args ...string) *exec.Cmd {
	return pinned(ctx, c, c.clientCPU, filepath.Join(c.bin, "echoload"), args...)
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

// server is one running echoserve process.
type server struct {
	cmd     *exec.Cmd
	addr    string
	started chan struct{} // closed once the address line is read
	done    chan struct{} // closed once the process has been waited for
}

func startServer(ctx context.Context, c config, impl string) (*server, error) {
	bin := filepath.Join(c.bin, "echoserve")
	if impl == baseImpl {
		bin, impl = filepath.Join(c.bin, "echoserve-base"), "wsgate"
	}
	cmd := pinned(ctx, c, c.serverCPU, bin, "-impl", impl,
		"-addr", "127.0.0.1:0", "-lifetime", "10m")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, started: make(chan struct{}), done: make(chan struct{})}
	out := bufio.NewReader(stdout)
	go func() { // owner: s; ends when the process does
		<-s.started
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(s.done)
	}()
	line, err := out.ReadString('\n')
	close(s.started)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("echoserve: no address: %w", err)
	}
	s.addr = strings.TrimSpace(line)
	return s, nil
}

func (s *server) wsURL() string { return "ws://" + s.addr + "/ws" }

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

func (s *server) stats(gc bool) (serverStats, error) {
	var st serverStats
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
