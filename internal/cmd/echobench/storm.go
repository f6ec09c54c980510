package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The storm suite (-suite storm): a reconnect storm of -storm-clients clients released at the
// same instant against a fresh echo server — raw gws, wsgate, and wsgate shedding above
// -storm-rate handshakes a second (Config.MaxHandshakeRate) — each client dialling until it is in
// and honouring Retry-After ("wsgate bench connect -storm"). A process may hold 20,000 files
// (ulimit -n here), so the clients are dealt over ceil(clients / -storm-per-process) load
// generator processes fired at one wall-clock time; their histograms are merged. Every client
// must be in at the end: one that is not counts as an error.
//
// The kernel decides what a SYN burst costs before any server code runs: a listener's accept
// queue holds min(backlog, net.core.somaxconn) connections (Go asks for somaxconn), and with
// tcp_syncookies=1 half-open ones beyond that same backlog are answered with SYN cookies
// (net.ipv4.tcp_max_syn_backlog matters only with cookies off). When the accept queue is full the final ACK of a handshake is dropped
// (ListenOverflows, ListenDrops in /proc/net/netstat) and the client retransmits after its RTO,
// from 1 s upwards: that is the tail a storm shows. Each measurement reports those counters'
// increase (machine-wide: other processes' listeners count too).

const suiteStorm = "storm"

// stormServers are the storm suite's: echoserve's gws and wsgate, and wsgate with
// MaxHandshakeRate, which echoserve reads from WSGATE_MAX_HANDSHAKE_RATE (as "wsgate serve" does).
var stormServers = map[string]serverSpec{
	"gws":         echoServers["gws"],
	"wsgate":      echoServers["wsgate"],
	"wsgate-shed": {bin: "echoserve", args: []string{"-impl", "wsgate-shed"}, stats: true},
}

// stormImpls are the suite's servers.
var stormImpls = []string{"gws", "wsgate", "wsgate-shed"}

// stormConfig is the suite's own settings (flags added by stormFlags).
type stormConfig struct {
	clients    int
	perProcess int
	rate       int
}

var storm stormConfig

// stormFlags adds the suite's flags to fs.
func stormFlags(fs *flag.FlagSet) {
	fs.IntVar(&storm.clients, "storm-clients", 15000, "storm: clients released at once")
	fs.IntVar(&storm.perProcess, "storm-per-process", 5000, "storm: clients per load generator process (each holds a socket per client; ulimit -n is the bound)")
	fs.IntVar(&storm.rate, "storm-rate", 2000, "storm: wsgate-shed's -max-handshake-rate, handshakes per second")
}

func checkStorm() error {
	if storm.clients < 1 || storm.clients > 100000 || storm.perProcess < 1 || storm.perProcess > loadgen.MaxConns ||
		storm.rate < 1 {
		return fmt.Errorf("need 1 ≤ -storm-clients ≤ 100000, 1 ≤ -storm-per-process ≤ %d, -storm-rate ≥ 1", loadgen.MaxConns)
	}
	return nil
}

func stormScenario() scenario {
	return scenario{name: fmt.Sprintf("storm %d", storm.clients), kind: loadgen.ModeConnect, conns: storm.clients}
}

// startStormServer starts impl as startServer does, with the shedding rate in its environment.
func startStormServer(ctx context.Context, c config, impl string) (*server, error) {
	spec, ok := stormServers[impl]
	if !ok {
		return nil, fmt.Errorf("unknown server %q", impl)
	}
	cmd := pinned(ctx, c, c.serverCPU, filepath.Join(c.bin, spec.bin), append(spec.args, "-addr", "127.0.0.1:0", "-lifetime", "10m")...)
	cmd.Env = append(os.Environ(), "WSGATE_MAX_HANDSHAKE_RATE="+strconv.Itoa(storm.rate))
	return launch(impl, cmd, spec, "", os.Stderr)
}

// measureStorm runs one storm against a fresh impl.
func measureStorm(ctx context.Context, c config, sc scenario, impl string) (measurement, error) {
	m := measurement{Scenario: sc.name, Impl: impl}
	srv, err := startStormServer(ctx, c, impl)
	if err != nil {
		return m, err
	}
	defer srv.stop()
	before, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	procs := (sc.conns + storm.perProcess - 1) / storm.perProcess
	// Every process must have its clients waiting before the firing: a second, and more for big ones.
	fire := time.Now().Add(time.Second + time.Duration(storm.perProcess)*200*time.Microsecond)
	k0 := readListenCounters()
	cpu0 := readCPU()
	lctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	outs := make([]bytes.Buffer, procs)
	cmds := make([]*exec.Cmd, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := range procs {
		n := min(storm.perProcess, sc.conns-p*storm.perProcess)
		// -source-ips: every process spreads its sockets over 127.0.0.1-4, so that the server's one
		// port takes them from several addresses, as it must beyond one address's port range.
		cmds[p] = clientCmd(lctx, c, "bench", "connect", "-storm", "-storm-at", fire.Format(time.RFC3339Nano),
			"-url", srv.wsURL(), "-c", strconv.Itoa(n), "-source-ips", "4", "-duration", c.duration.String(), "-ramp-timeout", "2m",
			"-connect-timeout", "30s", "-json", "-metrics-url", "off")
		cmds[p].Stdout, cmds[p].Stderr = &outs[p], os.Stderr
		wg.Go(func() { errs[p] = cmds[p].Run() }) // owner: measureStorm; ends with the process, bounded by lctx
	}
	wg.Wait()
	cpu1 := readCPU()
	k1 := readListenCounters()
	after, err := srv.stats(false)
	if err != nil {
		return m, err
	}
	var parts []*loadgen.StormResult
	var clientCPU time.Duration
	lr := &loadgen.Result{Mode: loadgen.ModeConnect, URL: srv.wsURL(), Conns: sc.conns}
	for p := range procs {
		var ee *exec.ExitError
		if errs[p] != nil && !(errors.As(errs[p], &ee) && ee.ExitCode() == 3) {
			return m, fmt.Errorf("wsgate bench connect -storm (process %d of %d): %w", p+1, procs, errs[p])
		}
		var r loadgen.Result
		if err := json.Unmarshal(outs[p].Bytes(), &r); err != nil || r.Storm == nil {
			return m, fmt.Errorf("wsgate bench connect -storm output (process %d): %v", p+1, err)
		}
		parts = append(parts, r.Storm)
		lr.DialErrors += r.DialErrors
		lr.IOErrors += r.IOErrors
		if lr.FirstError == "" {
			lr.FirstError = r.FirstError
		}
		ps := cmds[p].ProcessState
		clientCPU += ps.UserTime() + ps.SystemTime()
	}
	sum, err := loadgen.MergeStorms(parts)
	if err != nil {
		return m, err
	}
	sum.HandshakeHist, sum.AcceptHist = "", "" // merged already; the raw file needs no copy
	lr.Storm, lr.Started = sum, sum.FiredAt
	lr.Messages, lr.Seconds, lr.MsgsPerSec, lr.Opened = uint64(sum.Accepted), sum.Seconds, sum.HandshakesPerSec, sum.Accepted
	lr.Latency, lr.P50Micros, lr.P99Micros = sum.Handshake, sum.Handshake.P50, sum.Handshake.P99
	lr.Errors = uint64(lr.DialErrors) + lr.IOErrors
	m.Load, m.Before, m.After = lr, &before, &after
	kd := k1.sub(k0)
	m.Kernel = &kd
	serverCPU := time.Duration(after.CPUNanos - before.CPUNanos)
	if sum.Accepted > 0 {
		m.ServerCPUMicrosPerMsg = float64(serverCPU.Nanoseconds()) / 1e3 / float64(sum.Accepted)
		m.ClientCPUMicrosPerMsg = float64(clientCPU.Nanoseconds()) / 1e3 / float64(sum.Accepted)
	}
	m.ForeignCPU = foreignCPU(cpu0, cpu1, clientCPU+serverCPU)
	return m, nil
}

// listenCounters are the kernel's counters of a listener's queues (TcpExt in /proc/net/netstat).
type listenCounters struct {
	ListenOverflows uint64 `json:"listen_overflows"` // final ACKs dropped: the accept queue was full
	ListenDrops     uint64 `json:"listen_drops"`     // SYNs and ACKs dropped for any reason
	SyncookiesSent  uint64 `json:"syncookies_sent"`  // the SYN queue was full: answered with a cookie
	ReqQFullDrop    uint64 `json:"reqq_full_drop"`   // SYNs dropped: the SYN queue full, no cookies
}

func (a listenCounters) sub(b listenCounters) listenCounters {
	return listenCounters{a.ListenOverflows - b.ListenOverflows, a.ListenDrops - b.ListenDrops,
		a.SyncookiesSent - b.SyncookiesSent, a.ReqQFullDrop - b.ReqQFullDrop}
}

// readListenCounters reads /proc/net/netstat (zeros where unreadable): a line of TcpExt names,
// then a line of their values.
func readListenCounters() listenCounters {
	var k listenCounters
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return k
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			v, _ := strconv.ParseUint(values[j], 10, 64)
			switch n {
			case "ListenOverflows":
				k.ListenOverflows = v
			case "ListenDrops":
				k.ListenDrops = v
			case "SyncookiesSent":
				k.SyncookiesSent = v
			case "TCPReqQFullDrop":
				k.ReqQFullDrop = v
			}
		}
		break
	}
	return k
}

// sysctl reads a /proc/sys value for the report ("?" if unreadable).
func sysctl(path string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// reportStorm prints the storm suite's table: per server the medians over rounds of what the
// clients lived, and the kernel's queue counters.
func reportStorm(w io.Writer, c config, scenarios []scenario, all []measurement) {
	fmt.Fprintf(w, "\nStorm: medians of %d rounds. Kernel: net.core.somaxconn %s, net.ipv4.tcp_max_syn_backlog %s, tcp_syncookies %s, tcp_abort_on_overflow %s; wsgate-shed sheds above %d handshakes/s.\n\n",
		c.rounds, sysctl("net/core/somaxconn"), sysctl("net/ipv4/tcp_max_syn_backlog"), sysctl("net/ipv4/tcp_syncookies"),
		sysctl("net/ipv4/tcp_abort_on_overflow"), storm.rate)
	head := []string{"scenario", "server", "clients in", "handshakes/s", "handshake p50 ms", "handshake p99 ms",
		"in after p50 s", "in after p99 s", "503s", "retries honoured", "other failed attempts",
		"listen overflows", "SYN cookies", "server CPU µs/handshake"}
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "| --- | --- |"+strings.Repeat(" ---: |", len(head)-2))
	get := func(f func(*measurement) float64) metric {
		return metric{get: func(m *measurement) float64 {
			if m.Load == nil || m.Load.Storm == nil || m.Err != "" {
				return math.NaN()
			}
			return f(m)
		}}
	}
	cols := []struct {
		format string
		f      func(*measurement) float64
	}{
		{"%.0f", func(m *measurement) float64 { return float64(m.Load.Storm.Accepted) }},
		{"%.0f", func(m *measurement) float64 { return m.Load.Storm.HandshakesPerSec }},
		{"%.1f", func(m *measurement) float64 { return m.Load.Storm.Handshake.P50 / 1e3 }},
		{"%.1f", func(m *measurement) float64 { return m.Load.Storm.Handshake.P99 / 1e3 }},
		{"%.2f", func(m *measurement) float64 { return m.Load.Storm.Accept.P50 / 1e6 }},
		{"%.2f", func(m *measurement) float64 { return m.Load.Storm.Accept.P99 / 1e6 }},
		{"%.0f", func(m *measurement) float64 { return float64(m.Load.Storm.Shed) }},
		{"%.0f", func(m *measurement) float64 { return float64(m.Load.Storm.Honoured) }},
		{"%.0f", func(m *measurement) float64 { return float64(m.Load.Storm.Failed) }},
		{"%.0f", func(m *measurement) float64 { return overflows(m) }},
		{"%.0f", func(m *measurement) float64 { return cookies(m) }},
		{"%.2f", func(m *measurement) float64 { return m.ServerCPUMicrosPerMsg }},
	}
	for _, sc := range scenarios {
		for _, impl := range c.impls {
			cells := []string{sc.name, impl}
			for _, col := range cols {
				cells = append(cells, fmtNum(col.format, median(perRound(c, all, sc, get(col.f))[impl])))
			}
			fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
		}
	}
}

// overflows and cookies are m's listen counters (NaN when not read).
func overflows(m *measurement) float64 {
	if m.Kernel == nil {
		return math.NaN()
	}
	return float64(m.Kernel.ListenOverflows)
}

func cookies(m *measurement) float64 {
	if m.Kernel == nil {
		return math.NaN()
	}
	return float64(m.Kernel.SyncookiesSent)
}
