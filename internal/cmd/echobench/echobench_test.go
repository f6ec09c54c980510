package main

import (
	"io"
	"math"
	"os"
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
	for _, s := range selectScenarios(config{suite: suiteDefault, idle: 10000}) {
		names = append(names, s.name)
	}
	want := []string{"echo 100×32B", "echo 1000×32B", "echo 100×64KiB", "echo 1000×64KiB", "pipelined w16 100×32B", "idle 10000"}
	if !slices.Equal(names, want) {
		t.Fatalf("got %q, want %q", names, want)
	}
	cmp := selectScenarios(config{suite: suiteCompare, idle: 10000, only: "1KiB"})
	if len(cmp) != 2 || cmp[0].name != "echo 100×1KiB" || cmp[1].size != 1024 {
		t.Fatalf("compare, only 1KiB: %+v", cmp)
	}
	fan := selectScenarios(config{suite: suiteFanout, subscribers: 10000, pubRates: []float64{5, 20}})
	if len(fan) != 2 || fan[1].name != "fanout 10000 subs × 20/s" || fan[1].kind != loadgen.ModeFanout {
		t.Fatalf("fanout: %+v", fan)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-suite", "mystery"}, {"-impls", "gws,nginx"}, {"-impls", "gws,gorilla"}, {"-suite", "fanout", "-pub-rates", "5,x"},
		{"-rounds", "0"},
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
