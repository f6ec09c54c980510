package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// exitBenchErrors is the exit status of a "wsgate bench" run that completed but saw errors
// (failed dials, lost connections, wrong echoes, lost publications): its summary is printed.
const exitBenchErrors = 3

// benchModes documents each mode for the help text, and says which flags it takes.
var benchModes = []struct {
	mode  loadgen.Mode
	brief string
	flags []string
}{
	{loadgen.ModeEcho, "C connections echo S-byte messages for D, W in flight on each (1 = closed loop); every echo verified byte for byte: msgs/s, MB/s, round-trip latency percentiles, per-connection fairness (Jain's index)",
		[]string{"c", "size", "window", "rate", "text", "suffix", "drain"}},
	{loadgen.ModeIdle, "open C connections (spread over 127.0.0.x source addresses when one has too few ports) and hold them for D without traffic but the server's pings, answered and counted (-protocol centrifugo: its connect command first, its {} pings answered {}); with -pid, the server's resident memory per connection",
		[]string{"c", "pid", "hold-stdin", "ramp-timeout", "protocol", "reset"}},
	{loadgen.ModeConnect, "C workers open a connection and close it (with the close handshake), again and again, for D: handshakes/s and handshake latency percentiles. With -storm, a reconnect storm instead: C clients dial at once (spread over 127.0.0.x source addresses when one has too few ports), each until it is in, waiting what a 503 or 429 says in Retry-After (plus up to 1 s of jitter), else backing off 100 ms to 5 s; then held for D. Reports clients in, handshakes/s, p50/p99 handshake time and time to get in, 503s and retries honoured",
		[]string{"c", "storm", "storm-at", "ramp-timeout"}},
	{loadgen.ModeFanout, "N subscribers on one channel (wsgate.v1, or Centrifugo's JSON protocol), one publisher at R publications/s for D: delivery latency percentiles (from the publisher's timestamp in the data), publications lost, duplicated or reordered per subscriber. Against a cluster, -url lists its nodes: the publisher on the node -publish-node numbers, the subscribers dealt round robin over the others, so that every delivery crosses nodes; the figures also per node",
		[]string{"subscribers", "rate", "size", "channel", "protocol", "publish-node", "drain", "ramp-timeout"}},
}

// commonBenchFlags are taken by every mode.
var commonBenchFlags = []string{"url", "duration", "json", "html", "allow-remote", "source-ips", "dialers", "connect-timeout", "interval", "quiet", "metrics-url", "ca"}

// benchOptions is the command line of "wsgate bench MODE".
type benchOptions struct {
	cfg       loadgen.Config
	json      bool
	html      string
	quiet     bool
	holdStdin bool
	// metricsURL: "" derives each target's /metrics, "off" reads none, else one URL per target.
	metricsURL string
}

// newBenchFlagSet binds every flag of every mode to o; the mode's defaults are already in o.cfg.
func newBenchFlagSet(o *benchOptions, mode loadgen.Mode) *flag.FlagSet {
	c := &o.cfg
	fs := flag.NewFlagSet("wsgate bench "+string(mode), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.URL, "url", c.URL, "`URL` of the server, ws:// or wss://; fanout: the URLs of a cluster's nodes, comma-separated")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to send (echo, connect, fanout) or to hold the connections once open (idle), at most 10m")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object instead of the summary")
	fs.StringVar(&o.html, "html", "", "also write a self-contained HTML report (latency by percentile, throughput and latency over time, inline SVG) to `file`")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.Func("ca", "wss://: trust only the certificates of this PEM `file` (a test server's self-signed one), not the system's", func(v string) error {
		pem, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", v)
		}
		return nil
	})
	fs.IntVar(&c.SourceIPs, "source-ips", 0, "spread connections over local addresses 127.0.0.1..127.0.0.`N`; 0 picks what the connection count needs")
	fs.IntVar(&c.Dialers, "dialers", c.Dialers, "connections dialled at once")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "bound on each dial with its handshake, and on each setup request")
	fs.DurationVar(&c.Interval, "interval", 0, "time between progress updates and time line samples; 0: duration/60 within [100ms, 1s]")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line (there is none anyway when stdout is not a terminal)")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "`URL` of the target's Prometheus metrics, read before, every second during and after the run to report the server's CPU, memory, goroutines and drops; with several -url nodes, one per node, comma-separated; off: none (default: each -url's http(s)://host:port/metrics)")

	fs.IntVar(&c.Conns, "c", c.Conns, "connections (echo, idle) or workers (connect, where the default is 10), at most 50000")
	fs.IntVar(&c.Size, "size", c.Size, "echo: message size in `bytes`; fanout: padding added to each publication's data")
	fs.IntVar(&c.Window, "window", c.Window, "echo: messages in flight per connection; 1 is a closed loop (send, wait for the echo, send)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "echo: cap on messages/s over all connections (0: as fast as the echoes return); fanout: publications/s")
	fs.BoolVar(&c.Text, "text", false, "echo: send text frames instead of binary")
	fs.StringVar(&c.Suffix, "suffix", "", "echo: what the server appends to each reply (wsgate serve answers \"<msg> done\": use -suffix ' done')")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "after the sending phase, how long to wait for echoes or deliveries still in flight")
	fs.IntVar(&c.PID, "pid", 0, "idle: the server's process id, to read its VmRSS (/proc/PID/status) before and after")
	fs.BoolVar(&c.Reset, "reset", false, "idle: end the connections with a TCP reset, leaving no socket in TIME_WAIT (for back-to-back kernel memory measurements)")
	fs.BoolVar(&o.holdStdin, "hold-stdin", false, "idle: print \"open N\" once the connections are up, and let go of them when stdin closes (or -duration passes); for scripts that measure the server meanwhile")
	fs.DurationVar(&c.RampTimeout, "ramp-timeout", c.RampTimeout, "idle, fanout, connect -storm: bound on opening (and subscribing) every connection")
	fs.BoolVar(&c.Storm, "storm", false, "connect: a reconnect storm of -c clients dialling at once, each until it is in (or -ramp-timeout), honouring Retry-After")
	fs.Func("storm-at", "connect -storm: when to release the clients, an RFC 3339 `time` (so that the storms of several processes fire together); default: at once", func(v string) error {
		t, err := time.Parse(time.RFC3339Nano, v)
		c.StormAt = t
		return err
	})
	fs.IntVar(&c.Subscribers, "subscribers", c.Subscribers, "fanout: subscribed connections")
	fs.StringVar(&c.Channel, "channel", c.Channel, "fanout: channel name")
	fs.IntVar(&c.PublishNode, "publish-node", c.PublishNode, "fanout: the publisher's node, `N` from 1 in the list -url gives; with two nodes or more it takes no subscribers")
	fs.Func("protocol", "fanout: wsgate (the wsgate.v1 subprotocol) or centrifugo (its JSON protocol; anonymous clients must be allowed to subscribe and publish) (default wsgate); idle: centrifugo sends its connect command on each connection and answers its pings, wsgate (the default) speaks no protocol", func(s string) error {
		switch p := loadgen.Protocol(s); p {
		case loadgen.ProtoWsgate, loadgen.ProtoCentrifugo:
			c.Protocol = p
			return nil
		}
		return errors.New("want wsgate or centrifugo")
	})
	return fs
}

// defaultBenchOptions are the defaults of mode's flags.
func defaultBenchOptions(mode loadgen.Mode) benchOptions {
	c := loadgen.Config{Mode: mode, URL: "ws://127.0.0.1:8080/ws"}
	c.Duration = 10 * time.Second
	c = c.WithDefaults()
	c.Interval = 0 // chosen from the final duration
	return benchOptions{cfg: c}
}

// runBench is "wsgate bench MODE [flags]".
func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		printBenchUsage(stdout)
		if len(args) == 0 {
			return usageError{errors.New("bench: missing mode (echo, idle, connect or fanout)")}
		}
		return nil
	}
	mode := loadgen.Mode(args[0])
	known := false
	for _, m := range benchModes {
		known = known || m.mode == mode
	}
	if !known {
		return usageError{fmt.Errorf("bench: unknown mode %q (want echo, idle, connect or fanout; see wsgate bench -h)", args[0])}
	}
	o := defaultBenchOptions(mode)
	fs := newBenchFlagSet(&o, mode)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printBenchModeUsage(stdout, mode, fs)
			return nil
		}
		return usageError{fmt.Errorf("bench %s: %w", mode, err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench %s: unexpected argument %q", mode, fs.Arg(0))}
	}
	if err := checkModeFlags(fs, mode); err != nil {
		return usageError{err}
	}
	cfg := o.cfg // the defaults are in already: a zero given on the command line stays, and is refused
	if strings.Contains(cfg.URL, ",") {
		cfg.Nodes = splitNodes(cfg.URL)
		cfg.URL = cfg.Nodes[0]
		if cfg.PublishNode >= 1 && cfg.PublishNode <= len(cfg.Nodes) {
			cfg.URL = cfg.Nodes[cfg.PublishNode-1]
		}
	}
	if cfg.Interval == 0 {
		cfg.Interval = loadgen.DefaultInterval(cfg.Duration)
	}
	if err := cfg.Check(); err != nil {
		return usageError{fmt.Errorf("bench %s: %w", mode, err)}
	}
	var progress *progressLine
	if !o.quiet && !o.json && isTerminalWriter(stdout) {
		progress = &progressLine{w: stdout}
		cfg.Progress = progress.show
	}
	var hold chan struct{}
	if o.holdStdin {
		hold = make(chan struct{})
		cfg.Hold = hold
		cfg.Ready = func(open int) {
			fmt.Fprintf(stdout, "open %d\n", open)
			go func() { // owner: the process; ends with stdin (a test's pipe, a script's, or at exit)
				_, _ = io.Copy(io.Discard, stdin)
				close(hold)
			}()
		}
	}
	watch, err := watchServers(ctx, o.metricsURL, cfg)
	if err != nil {
		return usageError{fmt.Errorf("bench %s: %w", mode, err)}
	}
	res, err := runMode(ctx, cfg)
	if watch != nil {
		// The last scrape is made even after an interrupt: what the run cost is still of interest.
		server := watch.Stop(context.WithoutCancel(ctx))
		if res != nil {
			res.Server = server
		}
	}
	if progress != nil {
		progress.clear()
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", mode, err)
	}
	if o.html != "" {
		if err := writeHTMLFile(o.html, res, "wsgate bench "+strings.Join(args, " ")); err != nil {
			return err
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		res.Print(stdout)
	}
	if res.Errors > 0 {
		return exitError{exitBenchErrors, fmt.Errorf("bench %s: %d errors; first: %s", mode, res.Errors, res.FirstError)}
	}
	return nil
}

// watchServers starts reading the metrics of the run's targets, unless -metrics-url is off. A
// target without metrics is reported so in the result; only a bad -metrics-url is an error.
func watchServers(ctx context.Context, metricsURL string, cfg loadgen.Config) (*loadgen.ServerWatch, error) {
	if metricsURL == "off" {
		return nil, nil
	}
	urls := cfg.Nodes
	if len(urls) == 0 {
		urls = []string{cfg.URL}
	}
	var given []string
	if metricsURL != "" {
		given = splitNodes(metricsURL)
		for _, u := range given {
			if err := loadgen.CheckMetricsURL(u, cfg.AllowRemote); err != nil {
				return nil, err
			}
		}
	}
	targets, err := loadgen.MetricsTargets(urls, given)
	if err != nil {
		return nil, err
	}
	return loadgen.WatchServers(ctx, targets, 0, nil), nil
}

// splitNodes splits -url's list of nodes at its commas, dropping spaces and empty entries.
func splitNodes(list string) []string {
	var nodes []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			nodes = append(nodes, u)
		}
	}
	if len(nodes) == 0 {
		nodes = []string{""}
	}
	return nodes
}

// isTerminalWriter reports whether w is an interactive terminal, for the progress line.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

func runMode(ctx context.Context, c loadgen.Config) (*loadgen.Result, error) {
	switch c.Mode {
	case loadgen.ModeIdle:
		return loadgen.Idle(ctx, c)
	case loadgen.ModeConnect:
		return loadgen.Connect(ctx, c)
	case loadgen.ModeFanout:
		return loadgen.Fanout(ctx, c)
	}
	return loadgen.Echo(ctx, c)
}

// checkModeFlags refuses a flag given that the mode does not use, so that nobody believes it
// changed anything.
func checkModeFlags(fs *flag.FlagSet, mode loadgen.Mode) error {
	allowed := map[string]bool{}
	for _, f := range commonBenchFlags {
		allowed[f] = true
	}
	for _, m := range benchModes {
		if m.mode == mode {
			for _, f := range m.flags {
				allowed[f] = true
			}
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if !allowed[f.Name] && err == nil {
			err = fmt.Errorf("bench %s: flag -%s does not apply to this mode (see wsgate bench %s -h)", mode, f.Name, mode)
		}
	})
	return err
}

func writeHTMLFile(path string, res *loadgen.Result, command string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("wsgate bench %s: %s", res.Mode, res.URL)
	err = loadgen.WriteHTML(f, title, command, []loadgen.Named{{Name: string(res.Mode), Result: res}})
	return errors.Join(err, f.Close())
}

// progressLine rewrites one terminal line in place.
type progressLine struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *progressLine) show(s loadgen.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%s %-8s %5.1fs  conns %d/%d  %s %d  %s/s %.0f", s.Mode, s.Phase, s.Elapsed.Seconds(),
		s.Conns, s.Target, s.Unit, s.Count, s.Unit, s.Rate)
	if s.P99 > 0 {
		line += fmt.Sprintf("  p50 %s  p99 %s", fmtMicros(s.P50), fmtMicros(s.P99))
	}
	line += fmt.Sprintf("  errors %d", s.Errors)
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
}

func fmtMicros(us float64) string {
	if us < 1000 {
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.2fms", us/1e3)
}

func printBenchUsage(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprint(bw, `Usage: wsgate bench MODE [flags]

Load a WebSocket server and measure it. Every run is bounded in connections, rate and
time, and targets a loopback address unless -allow-remote is given. On a terminal a
progress line shows connections, rate and p50/p99 so far; at the end a summary (or,
with -json, one JSON object). When the target serves Prometheus metrics (wsgate serve
does, at /metrics), the summary adds the server's CPU, memory, goroutines and drops
during the run (-metrics-url). Exit status 0: no errors; 3: the run completed with
errors (summary printed); 2: bad usage; 1: the run could not be made.

Modes:
`)
	for _, m := range benchModes {
		fmt.Fprintf(bw, "  %-8s %s\n", m.mode, wrap(m.brief, 70, "           "))
		fmt.Fprintf(bw, "           flags: -%s\n", strings.Join(m.flags, " -"))
	}
	fmt.Fprintf(bw, "\nFlags of every mode: -%s\n", strings.Join(commonBenchFlags, " -"))
	fmt.Fprint(bw, `
Examples:
  wsgate serve -addr 127.0.0.1:8080 &
  wsgate bench echo -c 100 -size 1024 -duration 10s -suffix ' done'
  wsgate bench echo -c 1000 -window 16 -suffix ' done' -json > echo.json
  wsgate bench idle -c 10000 -duration 20s -pid $(pgrep -n wsgate)
  wsgate bench connect -c 8 -duration 5s
  wsgate bench fanout -subscribers 10000 -rate 5 -duration 10s -html fanout.html
  wsgate bench fanout -url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws \
    -publish-node 1 -subscribers 3000 -rate 10   # a cluster: every delivery crosses nodes

Every flag, with its default:
`)
	o := defaultBenchOptions(loadgen.ModeEcho)
	printBenchFlags(bw, newBenchFlagSet(&o, loadgen.ModeEcho), nil)
}

func printBenchModeUsage(w io.Writer, mode loadgen.Mode, fs *flag.FlagSet) {
	for _, m := range benchModes {
		if m.mode == mode {
			fmt.Fprintf(w, "Usage: wsgate bench %s [flags]\n\n%s.\n\nFlags:\n", mode, wrap(strings.ToUpper(m.brief[:1])+m.brief[1:], 90, ""))
			printBenchFlags(w, fs, append(slices.Clone(m.flags), commonBenchFlags...))
		}
	}
}

// printBenchFlags prints the flags named in only (all when nil), with their defaults.
func printBenchFlags(w io.Writer, fs *flag.FlagSet, only []string) {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if only != nil && !want[f.Name] {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		fmt.Fprintf(w, "  -%s%s\n    \t%s", f.Name, typ, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// wrap breaks s into lines of at most width, each after the first starting with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 && n+1+len(word) > width {
			b.WriteString("\n" + indent)
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
