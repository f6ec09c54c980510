// Command echobench compares wsgate's echo server with raw gws and raw gorilla/websocket ones, run
// side by side in one invocation so that the machine's noise hits all three alike.
//
//	go run ./internal/cmd/echobench            # from the module root; about 5 minutes
//
// It builds internal/cmd/echoserve and internal/cmd/echoload into bench/bin, then runs -rounds
// rounds; in each, every scenario runs once per implementation, the order of the implementations
// rotated from round to round (gws, gorilla, wsgate; then gorilla, wsgate, gws; ...). Every
// measurement gets a fresh server process, pinned to one CPU and the load generator to another
// with taskset where there are two CPUs or more.
//
// The machine is shared: before each measurement echobench waits (boundedly) for other processes
// to leave the CPUs alone, and it redoes a measurement during which they took more than
// -max-foreign-cpu, until -budget is spent; every measurement records that noise.
//
// It prints a markdown table of medians and the ratios wsgate/gws and wsgate/gorilla, and writes
// every raw measurement to -raw as JSON. With -base DIR (another checkout, e.g. a git worktree of
// main), DIR's wsgate runs as a fourth server and the table adds wsgate/wsgate-base: run it from a
// patched tree to measure the patch against its baseline, interleaved like the rest.
//
// Everything talks to 127.0.0.1 only, every child is bounded in time, and every child it starts it
// stops itself, by PID.
package main

import (
	"context"
	"encoding/json"
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
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/echoserver"
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
	rounds    int
	duration  time.Duration
	idle      int
	bin       string
	raw       string
	only      string
	serverCPU string
	clientCPU string
	pin       bool
	// maxForeign is the CPU, in CPUs' worth, that other processes may take during a measurement
	// before it is redone (up to retries times).
	maxForeign float64
	retries    int
	quietWait  time.Duration
	budget     time.Duration
	// base, when set, is another checkout of this module whose wsgate runs as a fourth server,
	// "wsgate-base", so that a patch is measured against its baseline in the same invocation.
	base  string
	impls []string
}

// baseImpl names the baseline checkout's wsgate in measurements and tables.
const baseImpl = "wsgate-base"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("echobench", flag.ContinueOnError)
	fs.IntVar(&c.rounds, "rounds", 3, "rounds")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "duration of each echo measurement")
	fs.IntVar(&c.idle, "idle", 10000, "connections held for the idle-memory measurement")
	fs.StringVar(&c.bin, "bin", "bench/bin", "where to build echoserve and echoload")
	fs.StringVar(&c.raw, "raw", "", "write every measurement to this JSON file")
	fs.StringVar(&c.only, "only", "", "run only the scenarios whose name contains this")
	fs.StringVar(&c.serverCPU, "server-cpu", "0", "CPU list for the servers (taskset -c)")
	fs.StringVar(&c.clientCPU, "client-cpu", "1", "CPU list for the load generator (taskset -c)")
	fs.Float64Var(&c.maxForeign, "max-foreign-cpu", 0.15, "redo a measurement while other processes took more CPUs' worth than this")
	fs.IntVar(&c.retries, "retries", 2, "how many times a disturbed measurement is redone")
	fs.DurationVar(&c.budget, "budget", 12*time.Minute, "stop waiting for quiet and redoing disturbed measurements after this long")
	fs.DurationVar(&c.quietWait, "quiet-wait", 30*time.Second, "before each measurement, wait up to this long for the machine to be quiet")
	fs.StringVar(&c.base, "base", "", "another checkout of this module (e.g. a git worktree of main): its wsgate runs beside this one as "+baseImpl)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.impls = echoserver.Impls
	if c.base != "" {
		c.impls = append(slices.Clip(c.impls), baseImpl)
	}
	if c.rounds < 1 || c.rounds > 20 || c.duration <= 0 || c.duration > time.Minute || c.idle < 1 || c.idle > 30000 {
		return errors.New("need 1 ≤ -rounds ≤ 20, 0 < -duration ≤ 1m, 1 ≤ -idle ≤ 30000")
	}
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		c.pin = true
	} else {
		fmt.Fprintln(stderr, "echobench: no taskset or a single CPU: server and client are not pinned")
	}
	if err := build(ctx, ".", c.bin, ""); err != nil {
		return err
	}
	if c.base != "" {
		if err := build(ctx, c.base, c.bin, "-base"); err != nil {
			return err
		}
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
		b, _ := json.MarshalIndent(all, "", "  ")
		if err := os.WriteFile(c.raw, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	report(stdout, c, scenarios, all)
	return nil
}

// build compiles the server and the load generator of the module checkout in dir into bin, with
// suffix appended to their names, so that no measurement includes a compile.
func build(ctx context.Context, dir, bin, suffix string) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	for _, cmd := range []string{"echoserve", "echoload"} {
		b := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(abs, cmd+suffix), "./internal/cmd/"+cmd)
		b.Dir = dir
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build %s in %s (run echobench from the module root): %w", cmd, dir, err)
		}
	}
	return nil
}

// scenario is one kind of measurement.
type scenario struct {
	name   string
	conns  int
	size   int
	window int
	idle   int // > 0: an idle-memory measurement with this many connections
}

func selectScenarios(c config) []scenario {
	all := []scenario{
		{name: "echo 100×32B", conns: 100, size: 32, window: 1},
		{name: "echo 1000×32B", conns: 1000, size: 32, window: 1},
		{name: "echo 100×64KiB", conns: 100, size: 64 << 10, window: 1},
		{name: "echo 1000×64KiB", conns: 1000, size: 64 << 10, window: 1},
		{name: "pipelined w16 100×32B", conns: 100, size: 32, window: 16},
		{name: fmt.Sprintf("idle %d", c.idle), idle: c.idle},
	}
	var out []scenario
	for _, s := range all {
		if strings.Contains(s.name, c.only) {
			out = append(out, s)
		}
	}
	return out
}
