package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// The default suite keeps the scenario names of the runtime's earlier runs, so that tables stay
// comparable from commit to commit.
func TestDefaultScenarioNames(t *testing.T) {
	var names []string
	for _, s := range selectScenarios(config{suite: suiteDefault, idles: []int{10000}}) {
		names = append(names, s.name)
	}
	want := []string{"echo 100×32B", "echo 1000×32B", "echo 100×64KiB", "echo 1000×64KiB", "pipelined w16 100×32B", "idle 10000"}
	if !slices.Equal(names, want) {
		t.Fatalf("got %q, want %q", names, want)
	}
	cmp := selectScenarios(config{suite: suiteCompare, idles: []int{10000}, only: "1KiB"})
	if len(cmp) != 2 || cmp[0].name != "echo 100×1KiB" || cmp[1].size != 1024 {
		t.Fatalf("compare, only 1KiB: %+v", cmp)
	}
	fan := selectScenarios(config{suite: suiteFanout, subscribers: 10000, pubRates: []float64{5, 20}})
	if len(fan) != 2 || fan[1].name != "fanout 10000 subs × 20/s" || fan[1].kind != loadgen.ModeFanout {
		t.Fatalf("fanout: %+v", fan)
	}
	cl := selectScenarios(config{suite: suiteCluster, subscribers: 3000, pubRates: []float64{10, 40}})
	if len(cl) != 2 || cl[0].name != "cluster 3000 subs × 10/s" || cl[0].conns != 3000 || cl[1].pubRate != 40 {
		t.Fatalf("cluster: %+v", cl)
	}
}

// The cluster suite's ratios: every topology against wsgate on one node, then every wsgate
// cluster against every Centrifugo cluster of as many nodes.
func TestClusterRatioPairs(t *testing.T) {
	got := ratioPairs(config{suite: suiteCluster, impls: defaultClusterImpls})
	want := []pair{{"wsgate-nats3", "wsgate"}, {"wsgate-embed3", "wsgate"}, {"wsgate-embed3-r1", "wsgate"}, {"centrifugo-nats3", "wsgate"},
		{"centrifugo-redis3", "wsgate"}, {"wsgate-nats3", "centrifugo-nats3"}, {"wsgate-nats3", "centrifugo-redis3"},
		{"wsgate-embed3", "centrifugo-nats3"}, {"wsgate-embed3", "centrifugo-redis3"},
		{"wsgate-embed3-r1", "centrifugo-nats3"}, {"wsgate-embed3-r1", "centrifugo-redis3"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if got := ratioPairs(config{suite: suiteFanout, impls: []string{"wsgate", "centrifugo"}}); !slices.Equal(got, []pair{{"wsgate", "centrifugo"}}) {
		t.Fatalf("fanout: %v", got)
	}
	for _, impl := range defaultClusterImpls {
		if !knownImpl(suiteCluster, impl) || knownImpl(suiteFanout, impl) != (impl == "wsgate") {
			t.Errorf("knownImpl %s", impl)
		}
	}
	if p := others([]string{"a", "b", "c"}, 1); !slices.Equal(p, []string{"a", "c"}) {
		t.Errorf("others: %q", p)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-suite", "mystery"}, {"-impls", "gws,nginx"}, {"-impls", "gws,gorilla"}, {"-suite", "fanout", "-pub-rates", "5,x"},
		{"-rounds", "0"}, {"-suite", "cluster", "-impls", "wsgate,centrifugo-kafka3"}, {"-suite", "cluster", "-pub-rates", "0"},
	} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestProcCPU(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU so that the tick count moves
	}
	if ns := procCPU(os.Getpid()); ns <= 0 {
		t.Fatalf("procCPU = %d", ns)
	}
}

func TestRatioAndMedian(t *testing.T) {
	if m := median([]float64{3, math.NaN(), 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if s := ratioCell(2, 1, []float64{2, 4}, []float64{1, 2}); !strings.HasPrefix(s, "2.00× [2.00–2.00]") {
		t.Errorf("ratio %q", s)
	}
	if slug("echo 1000×1KiB") != "echo-1000x1KiB" {
		t.Error(slug("echo 1000×1KiB"))
	}
}

// -pool pairs wsgate with each raw server within a round of a run, never across rounds or runs.
func TestPoolPairsWithinRounds(t *testing.T) {
	dir := t.TempDir()
	m := func(round int, impl string, rate, cpu float64) measurement {
		return measurement{Round: round, Scenario: "echo 100×32B", Impl: impl,
			Load: &loadgen.Result{MsgsPerSec: rate}, ServerCPUMicrosPerMsg: cpu}
	}
	write := func(name string, ms []measurement) string {
		b, err := json.Marshal(ms)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Run a: round 1 wsgate/gws = 0.9, round 2 = 1.2; run b: round 1 = 1.0 (its wsgate is slow
	// and so is its gws: pairing across runs would give other ratios).
	a := write("a.json", []measurement{m(1, "gws", 100, 5), m(1, "wsgate", 90, 6), m(2, "gws", 100, 5), m(2, "wsgate", 120, 4),
		m(1, "gorilla", 90, 6)})
	b := write("b.json", []measurement{m(1, "gws", 50, 10), m(1, "wsgate", 50, 10), {Round: 1, Scenario: "idle", Impl: "wsgate", IdleConns: 10}})
	var out strings.Builder
	if err := pool(&out, []string{a, b, a}); err != nil { // a file given twice counts once
		t.Fatal(err)
	}
	for _, want := range []string{
		"| echo 100×32B | gws | 3 | 1.000× [0.90–1.20] | 2/3 (≥ 0.95) | 1.000× |",
		"| echo 100×32B | gorilla | 1 | 1.000× [1.00–1.00] | 1/1 (≥ 1.00) | 1.000× |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "idle") {
		t.Errorf("idle measurements have no throughput to pool:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"-pool"}, io.Discard, io.Discard); err == nil {
		t.Error("-pool without files: no error")
	}
}

// The cluster summary: a row per topology, its p99 against wsgate on one node, and a wsgate
// cluster's deliveries/s against the Centrifugo cluster of as many nodes, paired round by round.
func TestReportCluster(t *testing.T) {
	c := config{suite: suiteCluster, rounds: 2, impls: []string{"wsgate", "wsgate-nats3", "centrifugo-nats3"}}
	sc := selectScenarios(config{suite: suiteCluster, subscribers: 3000, pubRates: []float64{10}})[0]
	m := func(round int, impl string, rate, p99 float64) measurement {
		return measurement{Round: round, Scenario: sc.name, Impl: impl, ServerCPUMicrosPerMsg: 10,
			Load: &loadgen.Result{MsgsPerSec: rate, P50Micros: p99 / 2, P99Micros: p99}}
	}
	all := []measurement{m(1, "wsgate", 30000, 20e3), m(1, "wsgate-nats3", 30000, 30e3), m(1, "centrifugo-nats3", 20000, 60e3),
		m(2, "wsgate", 30000, 40e3), m(2, "wsgate-nats3", 30000, 40e3), m(2, "centrifugo-nats3", 30000, 40e3)}
	var out strings.Builder
	reportCluster(&out, c, []scenario{sc}, all)
	for _, want := range []string{
		"| cluster 3000 subs × 10/s | wsgate | 30000 | 15.0 | 30.0 | 0 | 10.00 |  |  |  |  |",
		"| cluster 3000 subs × 10/s | wsgate-nats3 | 30000 | 17.5 | 35.0 | 0 | 10.00 | 1.17× [1.00–1.50] | 1.17× [1.00–1.50] | 1.20× [1.00–1.50] | 0.70× [0.50–1.00] |",
		"| cluster 3000 subs × 10/s | centrifugo-nats3 | 25000 | 25.0 | 50.0 | 0 | 10.00 | 1.67× [1.00–3.00] | 1.67× [1.00–3.00] |  |  |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks\n%s\n%s", want, out.String())
		}
	}
}
