// Command echobench compares WebSocket servers side by side in one invocation, so that the
// machine's noise hits them all alike, with "wsgate bench" (cmd/wsgate, internal/loadgen) as the
// load generator for every one of them.
//
//	go run ./internal/cmd/echobench                   # wsgate, raw gws, raw gorilla; about 6 minutes
//	go run ./internal/cmd/echobench -suite compare    # + olahol/melody, Node ws; under 20 minutes
//	go run ./internal/cmd/echobench -suite fanout     # wsgate serve against Centrifugo v6
//	go run ./internal/cmd/echobench -suite cluster    # one node against three, and Centrifugo's
//	go run ./internal/cmd/echobench -suite storm      # 15,000 clients at once: gws, wsgate, wsgate shedding
//	go run ./internal/cmd/echobench -suite idle       # idle, heartbeating connections: memory each
//
// Suites: "default" runs the echo scenarios of the runtime's own benchmarks against internal/
// echoserver's gws, gorilla and wsgate servers; "compare" runs the comparison (echo 100
// and 1,000 connections × 32 B, 1 KiB, 64 KiB, pipelined, 10,000 idle connections, connect rate)
// against those and an olahol/melody server (nested module bench/melody) and a Node ws server
// (bench/node); "fanout" runs one publisher and 10,000 subscribers on one channel against
// "wsgate serve" and Centrifugo (built from the Go module proxy into bench/bin, configured by
// bench/centrifugo/config.json); "cluster" runs one publisher and 3,000 subscribers against
// topologies (cluster.go): wsgate on one node (in-memory broker), wsgate on three nodes over a
// NATS cluster of three nats-server processes and over its embedded NATS cluster, and Centrifugo
// on three nodes with its NATS broker and with its Redis engine (Debian's redis-server), the
// publisher alone on the first node so that every delivery crosses nodes; "storm" releases
// -storm-clients clients at once against raw gws, wsgate and wsgate shedding above -storm-rate
// handshakes a second, from several load generator processes (storm.go); "idle" holds 1,000,
// 10,000 and 15,000 idle connections with heartbeats every -ping-interval against wsgate (parked),
// wsgate-goroutine, raw gws and Centrifugo, and reads each server's heap+stack, RSS, goroutines
// and the kernel's memory per socket the same way for all (idlesuite.go).
//
// It builds what it needs into bench/bin (and installs bench/node's packages with npm ci, and
// Centrifugo and nats-server with go install, when they are missing), then runs -rounds rounds; in each, every
// scenario runs once per server, the order of the servers rotated from round to round. Every
// measurement gets a fresh server process, pinned to one CPU and the load generator to another
// with taskset where there are two CPUs or more.
//
// The machine is shared: before each measurement echobench waits (boundedly) for other processes
// to leave the CPUs alone, and it redoes a measurement during which they took more than
// -max-foreign-cpu, until -budget is spent; every measurement records that noise.
//
// It prints a markdown table of medians and the ratios of wsgate to every other server, writes
// every raw measurement to -raw as JSON, latency-by-percentile plots to -plots as SVG, and an HTML
// report to -html. With -base DIR (another checkout, e.g. a git worktree of main), DIR's wsgate
// runs as one more server and the table adds wsgate/wsgate-base: run it from a patched tree to
// measure the patch against its baseline, interleaved like the rest. The echo suites run DIR's
// internal/cmd/echoserve, the fanout suite DIR's "wsgate serve".
//
// Everything talks to 127.0.0.1 only, every child is bounded in time, and every child it starts it
// stops itself, by PID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echobench:", err)
		os.Exit(1)
	}
}

type config struct {
	suite    string
	rounds   int
	duration time.Duration
	idles    []int // connection counts of the idle scenarios, one scenario each
	// pingInterval: the idle suite's heartbeat, for every server.
	pingInterval time.Duration
	bin          string
	benchDir     string // bench/: the nested module, the Node server, Centrifugo's config
	raw          string
	plots        string
	html         string
	only         string
	serverCPU    string
	clientCPU    string
	pin          bool
	// maxForeign is the CPU, in CPUs' worth, that other processes may take during a measurement
	// before it is redone (up to retries times).
	maxForeign float64
	retries    int
	quietWait  time.Duration
	budget     time.Duration
	// base, when set, is another checkout of this module whose wsgate runs as one more server,
	// "wsgate-base", so that a patch is measured against its baseline in the same invocation.
	base  string
	impls []string
	// Fanout suite: subscribers and publications per second.
	subscribers int
	pubRates    []float64
}

// Suites.
const (
	suiteDefault = "default"
	suiteCompare = "compare"
	suiteFanout  = "fanout"
	suiteCluster = "cluster"
	suiteIdle    = "idle"
)

// baseImpl names the baseline checkout's wsgate in measurements and tables.
const baseImpl = "wsgate-base"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	var impls string
	fs := flag.NewFlagSet("echobench", flag.ContinueOnError)
	fs.StringVar(&c.suite, "suite", suiteDefault, "what to compare: default (gws, gorilla, wsgate echo), compare (+ melody, Node ws; idle, connect), fanout (wsgate serve, Centrifugo), cluster (one node against three, wsgate and Centrifugo), storm (a reconnect storm: gws, wsgate, wsgate shedding; storm.go) or idle (idle connections with heartbeats: wsgate, wsgate-goroutine, gws, Centrifugo)")
	fs.StringVar(&impls, "impls", "", "comma-separated servers to run (default: the suite's)")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds")
	fs.DurationVar(&c.duration, "duration", 0, "duration of each measurement (default: 5s default, 3s compare, 10s fanout)")
	idles := fs.String("idle", "", "comma-separated connection counts held for the idle-memory measurement, one scenario each (default: 10000; 1000,10000,15000 in the idle suite)")
	fs.DurationVar(&c.pingInterval, "ping-interval", 0, "idle suite: every server pings each connection this often (default 5s)")
	fs.IntVar(&c.subscribers, "subscribers", 0, "fanout, cluster: subscribers on the channel (default: 10000 fanout, 3000 cluster)")
	pubRates := fs.String("pub-rates", "", "fanout, cluster: comma-separated publication rates per second, one scenario each (default: 5,20 fanout, 10,40 cluster)")
	fs.StringVar(&c.bin, "bin", "bench/bin", "where to build the servers and the load generator")
	fs.StringVar(&c.benchDir, "bench-dir", "bench", "the bench/ folder: bench/melody, bench/node, bench/centrifugo")
	fs.StringVar(&c.raw, "raw", "", "write every measurement to this JSON file")
	fs.StringVar(&c.plots, "plots", "", "write a latency-by-percentile SVG per scenario into this folder")
	fs.StringVar(&c.html, "html", "", "write an HTML report of every scenario (percentiles, throughput and latency over time) to this file")
	fs.StringVar(&c.only, "only", "", "run only the scenarios whose name contains this")
	fs.StringVar(&c.serverCPU, "server-cpu", "0", "CPU list for the servers (taskset -c)")
	fs.StringVar(&c.clientCPU, "client-cpu", "1", "CPU list for the load generator (taskset -c)")
	fs.Float64Var(&c.maxForeign, "max-foreign-cpu", 0.15, "redo a measurement while other processes took more CPUs' worth than this")
	fs.IntVar(&c.retries, "retries", 2, "how many times a disturbed measurement is redone")
	fs.DurationVar(&c.budget, "budget", 0, "stop waiting for quiet and redoing disturbed measurements after this long (default: 12m default, 10m compare, 4m fanout)")
	fs.DurationVar(&c.quietWait, "quiet-wait", 30*time.Second, "before each measurement, wait up to this long for the machine to be quiet")
	fs.StringVar(&c.base, "base", "", "another checkout of this module (e.g. a git worktree of main): its wsgate runs beside this one as "+baseImpl)
	stormFlags(fs)
	poolFiles := fs.Bool("pool", false, "measure nothing: pool the per-round ratios of the -raw files given as arguments")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *poolFiles {
		if fs.NArg() == 0 {
			return errors.New("-pool needs the -raw JSON files of earlier runs as arguments")
		}
		return pool(stdout, fs.Args())
	}
	defaults := map[string]struct {
		impls            []string
		duration, budget time.Duration
		subscribers      int
		pubRates         string
		idles            string
	}{
		suiteDefault: {[]string{"gws", "gorilla", "wsgate"}, 5 * time.Second, 12 * time.Minute, 0, "", "10000"},
		suiteCompare: {[]string{"gws", "gorilla", "melody", "ws", "wsgate"}, 3 * time.Second, 10 * time.Minute, 0, "", "10000"},
		suiteFanout:  {[]string{"wsgate", "centrifugo"}, 10 * time.Second, 4 * time.Minute, 10000, "5,20", ""},
		suiteCluster: {defaultClusterImpls, 10 * time.Second, 6 * time.Minute, 3000, "10,40", ""},
		// The idle suite's duration is unused: each measurement holds its connections for two
		// heartbeat rounds, then reads the server over a third (idleHold).
		suiteIdle:  {[]string{"wsgate", "wsgate-goroutine", "gws", "centrifugo"}, time.Second, 30 * time.Minute, 0, "", "1000,10000,15000"},
		suiteStorm: {stormImpls, 2 * time.Second, 4 * time.Minute, 0, "", ""},
	}
	d, ok := defaults[c.suite]
	if !ok {
		return fmt.Errorf("unknown -suite %q (want default, compare, fanout, cluster, storm or idle)", c.suite)
	}
	if *idles == "" {
		*idles = d.idles
	}
	if *idles != "" && d.idles == "" {
		return fmt.Errorf("-idle: suite %s has no idle scenario", c.suite)
	}
	for _, f := range strings.Split(*idles, ",") {
		if *idles == "" {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 30000 {
			return fmt.Errorf("-idle: %q is not a connection count within 1..30000", f)
		}
		c.idles = append(c.idles, n)
	}
	if c.pingInterval != 0 && c.suite != suiteIdle {
		return errors.New("-ping-interval applies to the idle suite only (the echo servers keep their defaults elsewhere)")
	}
	if c.suite == suiteIdle && c.pingInterval == 0 {
		c.pingInterval = 5 * time.Second
	}
	if c.pingInterval < 0 || c.pingInterval > time.Minute {
		return errors.New("-ping-interval must be within (0, 1m]")
	}
	if err := checkFileLimit(c.idles); err != nil {
		return err
	}
	if c.subscribers == 0 {
		c.subscribers = d.subscribers
	}
	if *pubRates == "" {
		*pubRates = d.pubRates
	}
	c.impls = d.impls
	if impls != "" {
		c.impls = strings.Split(impls, ",")
	}
	if c.duration == 0 {
		c.duration = d.duration
	}
	if c.budget == 0 {
		c.budget = d.budget
	}
	if c.base != "" {
		c.impls = append(slices.Clip(c.impls), baseImpl)
	}
	for _, impl := range c.impls {
		if !knownImpl(c.suite, impl) {
			return fmt.Errorf("-impls: suite %s has no server %q", c.suite, impl)
		}
	}
	if !slices.Contains(c.impls, "wsgate") {
		return errors.New("-impls must include wsgate: every ratio is wsgate's")
	}
	for _, f := range strings.Split(*pubRates, ",") {
		if *pubRates == "" {
			break // a suite without publications
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 || r > 1000 {
			return fmt.Errorf("-pub-rates: %q is not a rate within (0, 1000]", f)
		}
		c.pubRates = append(c.pubRates, r)
	}
	if c.rounds < 1 || c.rounds > 20 || c.duration <= 0 || c.duration > time.Minute ||
		c.subscribers < 0 || c.subscribers > 20000 {
		return errors.New("need 1 ≤ -rounds ≤ 20, 0 < -duration ≤ 1m, -subscribers ≤ 20000")
	}
	if c.suite == suiteStorm {
		if err := checkStorm(); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		c.pin = true
	} else {
		fmt.Fprintln(stderr, "echobench: no taskset or a single CPU: server and client are not pinned")
	}
	if err := build(ctx, c, stderr); err != nil {
		return err
	}
	scenarios := selectScenarios(c)
	if len(scenarios) == 0 {
		return fmt.Errorf("no scenario matches %q", c.only)
	}
	started := time.Now()
	var all []measurement
	for r := range c.rounds {
		for _, sc := range scenarios {
			for i := range c.impls {
				impl := c.impls[(i+r)%len(c.impls)]
				if err := ctx.Err(); err != nil {
					return err
				}
				// Patience with a busy machine is bounded by -budget: past it, every scenario is measured
				// once, as it comes, and its noise figure says how much to trust it.
				patient := time.Since(started) < c.budget
				if patient {
					waitQuiet(ctx, c.maxForeign, c.quietWait)
				}
				m, err := measure(ctx, c, sc, impl)
				// A measurement during which others took much CPU is redone, a bounded number of times.
				attempts := 1
				for ; patient && err == nil && m.ForeignCPU > c.maxForeign && attempts <= c.retries; attempts++ {
					fmt.Fprintf(stderr, "round %d %-16s %-8s disturbed (%.2f CPUs to others), again\n", r+1, sc.name, impl, m.ForeignCPU)
					waitQuiet(ctx, c.maxForeign, c.quietWait)
					m, err = measure(ctx, c, sc, impl)
				}
				m.Round, m.Attempts = r+1, attempts
				if err != nil {
					m.Err = err.Error()
					fmt.Fprintf(stderr, "round %d %s %s: %v\n", r+1, sc.name, impl, err)
				} else {
					fmt.Fprintf(stderr, "round %d %-16s %-8s %s\n", r+1, sc.name, impl, m.brief())
				}
				all = append(all, m)
			}
		}
	}
	fmt.Fprintf(stderr, "echobench: %d measurements in %v\n", len(all), time.Since(started).Round(time.Second))
	if c.raw != "" {
		if err := writeRaw(c.raw, all); err != nil {
			return err
		}
	}
	if err := writePlots(c, scenarios, all); err != nil {
		return err
	}
	report(stdout, c, scenarios, all)
	if c.suite == suiteCluster {
		reportCluster(stdout, c, scenarios, all)
	}
	if c.suite == suiteStorm {
		reportStorm(stdout, c, scenarios, all)
	}
	if c.suite == suiteIdle {
		reportOnPaper(stdout, c, scenarios, all)
	}
	return nil
}

// build compiles what the suite needs into c.bin, so that no measurement includes a compile: the
// load generator (cmd/wsgate, also the fanout suite's wsgate server), echoserve, echoserve-base
// from -base, echoserve-melody from the nested module bench/melody; it installs bench/node's
// packages and Centrifugo when they are missing.
func build(ctx context.Context, c config, log io.Writer) error {
	abs, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	goBuild := func(dir, out, pkg string) error {
		b := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(abs, out), pkg)
		b.Dir = dir
		b.Stdout, b.Stderr = log, log
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build %s in %s (run echobench from the module root): %w", pkg, dir, err)
		}
		return nil
	}
	if err := goBuild(".", "wsgate", "./cmd/wsgate"); err != nil {
		return err
	}
	if c.suite != suiteFanout && c.suite != suiteCluster {
		if err := goBuild(".", "echoserve", "./internal/cmd/echoserve"); err != nil {
			return err
		}
	}
	if c.base != "" {
		out, pkg := "echoserve-base", "./internal/cmd/echoserve"
		if c.suite == suiteFanout { // the base's "wsgate serve", beside this tree's
			out, pkg = "wsgate-base", "./cmd/wsgate"
		}
		if err := goBuild(c.base, out, pkg); err != nil {
			return err
		}
	}
	if slices.Contains(c.impls, "melody") {
		if err := goBuild(filepath.Join(c.benchDir, "melody"), "echoserve-melody", "."); err != nil {
			return err
		}
	}
	if slices.Contains(c.impls, "ws") {
		if _, err := os.Stat(filepath.Join(c.benchDir, "node", "node_modules", "ws")); err != nil {
			npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefix", filepath.Join(c.benchDir, "node"))
			npm.Stdout, npm.Stderr = log, log
			if err := npm.Run(); err != nil {
				return fmt.Errorf("npm ci in %s/node: %w", c.benchDir, err)
			}
		}
	}
	// go install from the module proxy, when the binary is missing from c.bin.
	install := func(bin, pkg string) error {
		if _, err := os.Stat(filepath.Join(abs, bin)); err == nil {
			return nil
		}
		fmt.Fprintln(log, "echobench: building "+pkg+" (a few minutes the first time)")
		gi := exec.CommandContext(ctx, "go", "install", pkg)
		gi.Env = append(os.Environ(), "GOBIN="+abs)
		gi.Stdout, gi.Stderr = log, log
		if err := gi.Run(); err != nil {
			return fmt.Errorf("go install %s: %w", pkg, err)
		}
		return nil
	}
	var centrifugo, nats bool
	for _, impl := range c.impls {
		t, ok := clusterTopologies[impl]
		centrifugo = centrifugo || impl == "centrifugo" || (c.suite == suiteCluster && ok && t.server == "centrifugo")
		nats = nats || (c.suite == suiteCluster && ok && t.broker == brokerNATS)
	}
	if centrifugo {
		if err := install("centrifugo", "github.com/centrifugal/centrifugo/v6@"+centrifugoVersion); err != nil {
			return err
		}
	}
	if nats {
		if err := install("nats-server", "github.com/nats-io/nats-server/v2@"+natsVersion); err != nil {
			return err
		}
	}
	return nil
}

// centrifugoVersion is the Centrifugo the fanout suite compares with.
const centrifugoVersion = "v6.9.1"

// scenario is one kind of measurement.
type scenario struct {
	name    string
	kind    loadgen.Mode
	conns   int // echo and idle connections, connect workers, fanout subscribers
	size    int
	window  int
	pubRate float64
}

func selectScenarios(c config) []scenario {
	echo := func(conns, size, window int) scenario {
		name := fmt.Sprintf("echo %d×%s", conns, sizeName(size))
		if window > 1 {
			name = fmt.Sprintf("pipelined w%d %d×%s", window, conns, sizeName(size))
		}
		return scenario{name: name, kind: loadgen.ModeEcho, conns: conns, size: size, window: window}
	}
	var idle []scenario
	for _, n := range c.idles {
		idle = append(idle, scenario{name: fmt.Sprintf("idle %d", n), kind: loadgen.ModeIdle, conns: n})
	}
	var all []scenario
	switch c.suite {
	case suiteDefault:
		all = append([]scenario{echo(100, 32, 1), echo(1000, 32, 1), echo(100, 64<<10, 1), echo(1000, 64<<10, 1), echo(100, 32, 16)}, idle...)
	case suiteCompare:
		all = append([]scenario{echo(100, 32, 1), echo(100, 1<<10, 1), echo(100, 64<<10, 1),
			echo(1000, 32, 1), echo(1000, 1<<10, 1), echo(1000, 64<<10, 1), echo(1000, 32, 16)}, idle...)
		all = append(all, scenario{name: "connect 8 workers", kind: loadgen.ModeConnect, conns: 8})
	case suiteIdle:
		all = idle
	case suiteStorm:
		all = []scenario{stormScenario()}
	case suiteFanout, suiteCluster:
		for _, r := range c.pubRates {
			all = append(all, scenario{name: fmt.Sprintf("%s %d subs × %g/s", c.suite, c.subscribers, r), kind: loadgen.ModeFanout,
				conns: c.subscribers, pubRate: r})
		}
	}
	var out []scenario
	for _, s := range all {
		if strings.Contains(s.name, c.only) {
			out = append(out, s)
		}
	}
	return out
}

func sizeName(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
