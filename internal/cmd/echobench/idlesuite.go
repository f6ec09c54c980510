package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The idle suite (-suite idle) measures what an idle connection with heartbeats on costs, for
// issue 13: wsgate (the default runtime, which parks idle connections), wsgate-goroutine (a
// reader goroutine per connection, Config.ParkAfter -1), raw gws with the heartbeat loop a gws
// user writes, and Centrifugo v6, all pinging every -ping-interval, at each of -idle's connection
// counts. Every server is read the same way: a garbage collection through its pprof handler
// (/debug/pprof/heap?gc=1), then the Go runtime's figures from its Prometheus /metrics
// (go_memstats_heap_inuse_bytes, go_memstats_stack_inuse_bytes, go_goroutines: client_golang's Go
// collector in Centrifugo and in echoserve alike), its VmRSS from /proc/PID/status, and the
// kernel's memory from /proc/slabinfo (or /proc/meminfo's Slab) and /proc/net/sockstat.

// idleSamples is how many times the held connections are read, spread over one ping interval,
// so that a reading taken while heartbeats wake parked connections counts for what it is.
const idleSamples = 5

// idleSample is one reading of a server and of the kernel.
type idleSample struct {
	At         float64   `json:"at_s"` // seconds since the connections were open; 0 before dialling
	HeapInuse  float64   `json:"heap_inuse"`
	StackInuse float64   `json:"stack_inuse"`
	Goroutines float64   `json:"goroutines"`
	VmRSS      uint64    `json:"vmrss"`
	Kernel     kernelMem `json:"kernel"`
}

// kernelMem is the machine's kernel memory that sockets take (system-wide: both ends of a
// loopback connection, and anything else the machine runs).
type kernelMem struct {
	Slab uint64 `json:"slab"` // bytes of slab objects in use, in the caches SlabSource says
	// SlabSource: "slabinfo" (socketCaches' objects × size), "slabinfo, all caches" (a kernel that
	// merged them away) or "meminfo" (Slab pages, when /proc/slabinfo is not readable).
	SlabSource string            `json:"slab_source"`
	Caches     map[string]uint64 `json:"caches,omitempty"` // bytes per cache of socketCaches
	TCPMem     uint64            `json:"tcp_mem"`          // bytes in TCP buffers (sockstat "mem" pages)
	TCPInuse   int               `json:"tcp_inuse"`        // TCP sockets in use
}

// idleFigures are what one idle-suite measurement adds to measurement.
type idleFigures struct {
	// PingInterval of every server in the run, seconds.
	PingInterval float64 `json:"ping_interval_s,omitempty"`
	// HeapStackPeak is the highest heap+stack per connection among the samples (the median is
	// HeapStackPerConn).
	HeapStackPeak float64 `json:"heap_stack_peak_per_conn,omitempty"`
	// KernelPerSocket: slab and TCP buffer memory added per socket, both ends of each connection
	// counted (2 × connections), median of the samples.
	KernelPerSocket float64 `json:"kernel_per_socket,omitempty"`
	// PingsPerConn: heartbeats answered per connection while it was held.
	PingsPerConn float64      `json:"pings_per_conn,omitempty"`
	BeforeSample *idleSample  `json:"before_sample,omitempty"`
	Samples      []idleSample `json:"samples,omitempty"`
}

// idleHold is how long the connections are held before the first sample: two heartbeat rounds
// (and at least 3 s, for wsgate to park them).
func idleHold(ping time.Duration) time.Duration { return max(2*ping, 3*time.Second) }

// measureIdleSuite opens sc.conns connections to srv, holds them for idleHold, reads srv and the
// kernel idleSamples times over one ping interval, and books the medians against a reading taken
// before dialling.
func measureIdleSuite(ctx context.Context, c config, sc scenario, srv *server, m *measurement) error {
	settleSockets(ctx)
	before, err := readIdle(ctx, srv)
	if err != nil {
		return err
	}
	hold := idleHold(c.pingInterval)
	bound := 3*time.Minute + hold + c.pingInterval + time.Minute
	lctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	args := []string{"-url", srv.wsURL(), "-duration", "10m", "-reset", "-ramp-timeout", "3m"}
	if srv.spec.protocol == loadgen.ProtoCentrifugo {
		args = append(args, "-protocol", "centrifugo")
	}
	// Noise: the CPU others took while the connections were dialled, held and read (a build or a
	// fork storm meanwhile also moves the kernel's caches); past -max-foreign-cpu the measurement
	// is redone, as in the other suites.
	cpu0, srvCPU0 := readCPU(), procCPU(srv.pid())
	cl, err := startIdleClient(lctx, c, sc.conns, args...)
	if err != nil {
		return err
	}
	defer cl.end()
	open := time.Now()
	var samples []idleSample
	for i := range idleSamples {
		at := hold + time.Duration(i)*c.pingInterval/idleSamples
		if err := sleepCtx(ctx, time.Until(open.Add(at))); err != nil {
			return err
		}
		s, err := readIdle(ctx, srv)
		if err != nil {
			return err
		}
		s.At = time.Since(open).Seconds()
		samples = append(samples, s)
	}
	// Let go: the load generator resets its connections and prints its result.
	rest, waitErr := cl.end()
	own := time.Duration(procCPU(srv.pid()) - srvCPU0)
	if ps := cl.cmd.ProcessState; ps != nil {
		own += ps.UserTime() + ps.SystemTime()
	}
	m.ForeignCPU = foreignCPU(cpu0, readCPU(), own)
	var lr loadgen.Result
	if err := json.Unmarshal(rest, &lr); err != nil {
		return fmt.Errorf("wsgate bench idle output (%v): %w", waitErr, err)
	}
	m.Load = &lr
	bookIdle(m, sc.conns, c.pingInterval, before, samples)
	if lr.Dropped > 0 || lr.Opened != sc.conns {
		return fmt.Errorf("%d of %d connections open, %d dropped while idle (%s): the figures do not hold",
			lr.Opened, sc.conns, lr.Dropped, lr.FirstError)
	}
	return nil
}

// bookIdle sets m's per-connection figures from a reading before dialling and the samples taken
// while n connections were held: the median of the samples for each figure, and the peak of
// heap+stack.
func bookIdle(m *measurement, n int, ping time.Duration, before idleSample, samples []idleSample) {
	per := func(f func(s idleSample) float64, div float64) (med, peak float64) {
		var xs []float64
		for _, s := range samples {
			xs = append(xs, (f(s)-f(before))/div)
		}
		if len(xs) == 0 {
			return math.NaN(), math.NaN()
		}
		return median(xs), slices.Max(xs)
	}
	fn := float64(n)
	m.IdleConns = n
	m.HeapStackPerConn, m.HeapStackPeak = per(func(s idleSample) float64 { return s.HeapInuse + s.StackInuse }, fn)
	m.RSSPerConn, _ = per(func(s idleSample) float64 { return float64(s.VmRSS) }, fn)
	m.GoroutinesPerConn, _ = per(func(s idleSample) float64 { return s.Goroutines }, fn)
	m.KernelPerSocket, _ = per(func(s idleSample) float64 { return float64(s.Kernel.Slab + s.Kernel.TCPMem) }, 2*fn)
	m.PingInterval = ping.Seconds()
	if m.Load != nil && m.Load.Opened > 0 {
		m.PingsPerConn = float64(m.Load.Pings) / float64(m.Load.Opened)
	}
	m.BeforeSample, m.Samples = &before, samples
	// Before and After, as the other suites keep them (the last sample is "after").
	toStats := func(s idleSample) *serverStats {
		return &serverStats{HeapInuse: uint64(s.HeapInuse), StackInuse: uint64(s.StackInuse), VmRSS: s.VmRSS, Goroutines: int(s.Goroutines)}
	}
	m.Before = toStats(before)
	if len(samples) > 0 {
		m.After = toStats(samples[len(samples)-1])
	}
}

// readIdle collects srv's garbage, then reads its Go figures, its VmRSS and the kernel's memory.
func readIdle(ctx context.Context, srv *server) (idleSample, error) {
	var s idleSample
	base := "http://" + srv.addr
	if err := httpGet(ctx, base+"/debug/pprof/heap?gc=1", io.Discard); err != nil {
		return s, fmt.Errorf("garbage collection through pprof: %w", err)
	}
	var body strings.Builder
	if err := httpGet(ctx, base+"/metrics", &body); err != nil {
		return s, err
	}
	v, err := goMetrics(body.String())
	if err != nil {
		return s, err
	}
	s.HeapInuse, s.StackInuse, s.Goroutines = v["go_memstats_heap_inuse_bytes"], v["go_memstats_stack_inuse_bytes"], v["go_goroutines"]
	if s.VmRSS, err = loadgen.ReadRSS(srv.pid()); err != nil {
		return s, err
	}
	s.Kernel, err = readKernel()
	return s, err
}

// goMetrics parses the Prometheus text format and returns the Go runtime's figures the suite
// reads; a page without all of them is an error.
func goMetrics(text string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	v := map[string]float64{}
	for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"} {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge() == nil {
			return nil, fmt.Errorf("metrics: no gauge %s", name)
		}
		v[name] = f.GetMetric()[0].GetGauge().GetValue()
	}
	return v, nil
}

func httpGet(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4") // the Prometheus text format
	resp, err := statsClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(w, io.LimitReader(resp.Body, 64<<20))
	return err
}

// readKernel reads the kernel's slab and TCP buffer memory, system-wide.
func readKernel() (kernelMem, error) {
	var k kernelMem
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil { // root only
		all := parseSlabinfo(string(b))
		k.Caches = map[string]uint64{}
		for _, name := range socketCaches {
			if v, ok := all[name]; ok {
				k.Caches[name] = v
				k.Slab += v
			}
		}
		k.SlabSource = "slabinfo"
		if _, ok := all["TCP"]; !ok {
			k.Caches, k.Slab, k.SlabSource = nil, 0, "slabinfo, all caches"
			for _, v := range all {
				k.Slab += v
			}
		}
	} else {
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return k, err
		}
		k.Slab, k.SlabSource = meminfoKB(string(b), "Slab:")<<10, "meminfo"
	}
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return k, err
	}
	pages, inuse := parseSockstat(string(b))
	k.TCPMem, k.TCPInuse = pages*uint64(os.Getpagesize()), inuse
	return k, nil
}

// socketCaches are the slab caches a connected TCP socket allocates from: the socket, its inode
// and the LSM's blobs, its file and dentry, its epoll item in the server's (and the client's)
// netpoller. Processes that start and exit, and builds, churn other caches; only these are
// read, though the same caches also hold other files' dentries and epoll items, so a quiet
// machine is still needed.
var socketCaches = []string{"TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq",
	"lsm_inode_cache", "lsm_file_cache"}

// parseSlabinfo returns active objects × object size per cache of /proc/slabinfo (2.1).
func parseSlabinfo(text string) map[string]uint64 {
	caches := map[string]uint64{}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "slabinfo") || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		active, err1 := strconv.ParseUint(f[1], 10, 64)
		size, err2 := strconv.ParseUint(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			caches[f[0]] += active * size
		}
	}
	return caches
}

// meminfoKB returns the value of key (e.g. "Slab:") in /proc/meminfo's text, in kB.
func meminfoKB(text, key string) uint64 {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// parseSockstat reads the TCP line of /proc/net/sockstat: "TCP: inuse N orphan N tw N alloc N
// mem PAGES".
func parseSockstat(text string) (memPages uint64, inuse int) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "TCP:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			switch f[i] {
			case "inuse":
				inuse, _ = strconv.Atoi(f[i+1])
			case "mem":
				memPages, _ = strconv.ParseUint(f[i+1], 10, 64)
			}
		}
	}
	return memPages, inuse
}

// settleSockets waits, up to 10 s, until the machine's count of TCP sockets holds still for a
// second: the previous measurement's sockets are gone before this one reads the kernel.
func settleSockets(ctx context.Context) {
	prev := -1
	for range 20 {
		k, err := readKernel()
		if err != nil || k.TCPInuse == prev {
			return
		}
		prev = k.TCPInuse
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// onPaper is what one million idle connections would take, in bytes: each one's heap+stack and
// the kernel's memory for its socket.
func onPaper(m *measurement) float64 { return (m.HeapStackPerConn + m.KernelPerSocket) * 1e6 }

// reportOnPaper prints, per connection count, the one-million-connections line of every server
// from the medians over rounds.
func reportOnPaper(w io.Writer, c config, scenarios []scenario, all []measurement) {
	fmt.Fprintln(w)
	for _, sc := range scenarios {
		hs := perRound(c, all, sc, heapStack)
		kn := perRound(c, all, sc, kernelSocket)
		var parts []string
		for _, impl := range c.impls {
			h, k := median(hs[impl]), median(kn[impl])
			if math.IsNaN(h) || math.IsNaN(k) {
				parts = append(parts, impl+" –")
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.2f GB (%.0f B heap+stack + %.0f B kernel)", impl, (h+k)*1e6/1e9, h, k))
		}
		fmt.Fprintf(w, "One million on paper, from %s (per connection × 10^6): %s\n", sc.name, strings.Join(parts, "; "))
	}
}

// checkFileLimit refuses connection counts that a process cannot hold: the load generator holds a
// file per connection, and so does the server. Every program started here is written in Go, which
// raises its soft limit to the hard one, so the hard limit is what counts.
func checkFileLimit(counts []int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // the processes will say so themselves
	}
	for _, n := range counts {
		if uint64(n)+fileMargin > lim.Max {
			return fmt.Errorf("-idle %d: the open-file limit is %d per process (ulimit -Hn); %d connections need %d or more",
				n, lim.Max, n, uint64(n)+fileMargin)
		}
	}
	return nil
}

// fileMargin is the files a process holds besides its connections (listeners, pipes, binaries).
const fileMargin = 256
