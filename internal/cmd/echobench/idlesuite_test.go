package main

import (
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The idle suite: a scenario per -idle count, its four servers, ratios against raw gws and of
// wsgate against its goroutine runtime and Centrifugo.
func TestIdleSuiteScenarios(t *testing.T) {
	sc := selectScenarios(config{suite: suiteIdle, idles: []int{1000, 10000, 15000}})
	var names []string
	for _, s := range sc {
		if s.kind != loadgen.ModeIdle {
			t.Errorf("%s: kind %s", s.name, s.kind)
		}
		names = append(names, s.name)
	}
	if want := []string{"idle 1000", "idle 10000", "idle 15000"}; !slices.Equal(names, want) || sc[2].conns != 15000 {
		t.Fatalf("got %q, want %q", names, want)
	}
	// The default suite takes a list too: a scenario per count, after the echo scenarios.
	def := selectScenarios(config{suite: suiteDefault, idles: []int{500, 2000}})
	if n := len(def); n != 7 || def[5].name != "idle 500" || def[6].name != "idle 2000" {
		t.Fatalf("default with two idle counts: %+v", def)
	}
	got := ratioPairs(config{suite: suiteIdle, impls: []string{"wsgate", "wsgate-goroutine", "gws", "centrifugo"}})
	want := []pair{{"wsgate", "gws"}, {"wsgate-goroutine", "gws"}, {"centrifugo", "gws"}, {"wsgate", "wsgate-goroutine"}, {"wsgate", "centrifugo"}}
	if !slices.Equal(got, want) {
		t.Fatalf("ratio pairs %v, want %v", got, want)
	}
	if got := ratioPairs(config{suite: suiteIdle, impls: []string{"wsgate", "centrifugo"}}); !slices.Equal(got, []pair{{"wsgate", "centrifugo"}}) {
		t.Fatalf("without gws: %v", got)
	}
	for _, impl := range []string{"wsgate", "wsgate-goroutine", "gws", "centrifugo", baseImpl} {
		if !knownImpl(suiteIdle, impl) {
			t.Errorf("idle suite lacks %s", impl)
		}
	}
	if knownImpl(suiteIdle, "gorilla") || !knownImpl(suiteDefault, "wsgate-goroutine") {
		t.Error("gorilla has no heartbeat for the idle suite; wsgate-goroutine is an echo server")
	}
	if idleHold(5*time.Second) != 10*time.Second || idleHold(time.Second) != 3*time.Second {
		t.Error("idleHold: two heartbeat rounds, at least 3 s")
	}
}

func TestIdleFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-suite", "idle", "-idle", "1000,x"}, {"-suite", "idle", "-idle", "0"}, {"-suite", "idle", "-idle", "40000"},
		{"-suite", "idle", "-ping-interval", "2m"}, {"-suite", "idle", "-ping-interval", "-1s"},
		{"-ping-interval", "5s"},                       // the default suite's servers keep their heartbeats
		{"-suite", "fanout", "-idle", "1000"},          // no idle scenario there
		{"-suite", "idle", "-impls", "wsgate,gorilla"}, // gorilla has no heartbeat
		{"-suite", "idle", "-idle", "19900"},           // over the 20,000 files of a process, with its margin
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// bookIdle: medians of the samples against the reading before, the heap+stack peak, the kernel
// per socket over both ends of each connection, pings per connection.
func TestBookIdle(t *testing.T) {
	before := idleSample{HeapInuse: 1000, StackInuse: 0, Goroutines: 10, VmRSS: 10000, Kernel: kernelMem{Slab: 1 << 20}}
	sample := func(heap float64, slab uint64) idleSample {
		return idleSample{HeapInuse: heap, StackInuse: 1000, Goroutines: 110, VmRSS: 110000, Kernel: kernelMem{Slab: slab, TCPMem: 4096}}
	}
	m := measurement{Load: &loadgen.Result{Opened: 100, Pings: 300}}
	bookIdle(&m, 100, 5*time.Second, before, []idleSample{
		sample(100000, 1<<20+800_000), sample(300000, 1<<20+795_904), sample(200000, 1<<20+900_000)})
	// heap+stack: (200000+1000-1000)/100 median, (300000+1000-1000)/100 peak.
	if m.HeapStackPerConn != 2000 || m.HeapStackPeak != 3000 || m.RSSPerConn != 1000 || m.GoroutinesPerConn != 1 {
		t.Fatalf("%+v", m)
	}
	if m.KernelPerSocket != (800_000+4096)/200.0 || m.PingsPerConn != 3 || m.PingInterval != 5 || m.IdleConns != 100 {
		t.Fatalf("kernel %v, pings %v", m.KernelPerSocket, m.PingsPerConn)
	}
	if got := onPaper(&m); math.Abs(got-(2000+4020.48)*1e6) > 1 {
		t.Fatalf("on paper %v", got)
	}
}

func TestKernelAndMetricsParsing(t *testing.T) {
	slab := "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\nTCP 26 26 2368 13 8 : tunables 0 0 0\nfilp 903 910 192 21 1 : tunables\n"
	if got := parseSlabinfo(slab); got["TCP"] != 26*2368 || got["filp"] != 903*192 || len(got) != 2 {
		t.Errorf("slabinfo %v", got)
	}
	pages, inuse := parseSockstat("sockets: used 13\nTCP: inuse 4003 orphan 0 tw 3 alloc 4003 mem 257\nUDP: inuse 0 mem 9\n")
	if pages != 257 || inuse != 4003 {
		t.Errorf("sockstat %d %d", pages, inuse)
	}
	if kb := meminfoKB("MemTotal: 100 kB\nSlab:             152736 kB\n", "Slab:"); kb != 152736 {
		t.Errorf("meminfo %d", kb)
	}
	text := "# TYPE go_goroutines gauge\ngo_goroutines 88\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 2.2142976e+07\n" +
		"# TYPE go_memstats_stack_inuse_bytes gauge\ngo_memstats_stack_inuse_bytes 819200\n"
	v, err := goMetrics(text)
	if err != nil || v["go_goroutines"] != 88 || v["go_memstats_heap_inuse_bytes"] != 22142976 || v["go_memstats_stack_inuse_bytes"] != 819200 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := goMetrics("# TYPE go_goroutines gauge\ngo_goroutines 88\n"); err == nil {
		t.Error("a page without the memory gauges was accepted")
	}
	if k, err := readKernel(); err != nil || k.Slab == 0 || k.SlabSource == "" {
		t.Errorf("readKernel on this machine: %+v %v", k, err)
	}
}

// The report: the idle suite's rows, and a line per connection count with one million
// connections on paper.
func TestReportIdle(t *testing.T) {
	c := config{suite: suiteIdle, rounds: 1, impls: []string{"wsgate", "gws"}}
	sc := selectScenarios(config{suite: suiteIdle, idles: []int{1000}})
	m := func(impl string, heap, kernel float64) measurement {
		return measurement{Round: 1, Scenario: "idle 1000", Impl: impl, IdleConns: 1000, HeapStackPerConn: heap, RSSPerConn: heap,
			GoroutinesPerConn: 1, Before: &serverStats{Goroutines: 5},
			idleFigures: idleFigures{HeapStackPeak: heap, KernelPerSocket: kernel, PingsPerConn: 3, Samples: []idleSample{{}}}}
	}
	all := []measurement{m("wsgate", 3000, 4000), m("gws", 12000, 4000)}
	var out strings.Builder
	report(&out, c, sc, all)
	reportOnPaper(&out, c, sc, all)
	for _, want := range []string{
		"| idle 1000 | heap+stack B/conn | lower | 3000 | 12000 | 0.25× |",
		"| idle 1000 | kernel B/socket | lower | 4000 | 4000 | 1.00× |",
		"| idle 1000 | 1M conns on paper GB | lower | 7.00 | 16.00 | 0.44× |",
		"| idle 1000 | pings answered/conn | - | 3.0 | 3.0 | 1.00× |",
		"One million on paper, from idle 1000 (per connection × 10^6): wsgate 7.00 GB (3000 B heap+stack + 4000 B kernel); gws 16.00 GB (12000 B heap+stack + 4000 B kernel)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks\n%s\n%s", want, out.String())
		}
	}
}
