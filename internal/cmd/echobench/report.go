package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// metric is one figure the report compares, read from a measurement (NaN where it has none).
type metric struct {
	name   string
	better string // "higher" or "lower"
	format string
	get    func(*measurement) float64
}

func loadMetric(name, better, format string, f func(*loadgen.Result) float64) metric {
	return metric{name, better, format, func(m *measurement) float64 {
		if m.Load == nil || m.Err != "" {
			return math.NaN()
		}
		return f(m.Load)
	}}
}

func measMetric(name, better, format string, f func(*measurement) float64) metric {
	return metric{name, better, format, func(m *measurement) float64 {
		if m.Load == nil || m.Err != "" {
			return math.NaN()
		}
		return f(m)
	}}
}

var (
	msgsPerSec = loadMetric("msgs/s", "higher", "%.0f", func(l *loadgen.Result) float64 { return l.MsgsPerSec })
	handshakes = loadMetric("handshakes/s", "higher", "%.0f", func(l *loadgen.Result) float64 { return l.MsgsPerSec })
	deliveries = loadMetric("deliveries/s", "higher", "%.0f", func(l *loadgen.Result) float64 { return l.MsgsPerSec })
	p50        = loadMetric("p50 µs", "lower", "%.0f", func(l *loadgen.Result) float64 { return l.P50Micros })
	p90        = loadMetric("p90 µs", "lower", "%.0f", func(l *loadgen.Result) float64 { return l.Latency.P90 })
	p99        = loadMetric("p99 µs", "lower", "%.0f", func(l *loadgen.Result) float64 { return l.P99Micros })
	p999       = loadMetric("p99.9 µs", "lower", "%.0f", func(l *loadgen.Result) float64 { return l.Latency.P999 })
	maxLat     = loadMetric("max µs", "lower", "%.0f", func(l *loadgen.Result) float64 { return l.Latency.Max })
	jainIdx    = loadMetric("Jain index", "higher", "%.3f", func(l *loadgen.Result) float64 { return l.Jain })
	perConnMin = loadMetric("per-conn min", "higher", "%.0f", func(l *loadgen.Result) float64 { return float64(l.PerConnMin) })
	perConnMax = loadMetric("per-conn max", "-", "%.0f", func(l *loadgen.Result) float64 { return float64(l.PerConnMax) })
	errorsN    = loadMetric("errors", "lower", "%.0f", func(l *loadgen.Result) float64 { return float64(l.Errors) })
	lost       = loadMetric("lost", "lower", "%.0f", func(l *loadgen.Result) float64 { return float64(l.Lost) })
	published  = loadMetric("publications", "-", "%.0f", func(l *loadgen.Result) float64 { return float64(l.Published) })
	cpuPerMsg  = measMetric("server CPU µs/msg", "lower", "%.2f", func(m *measurement) float64 { return m.ServerCPUMicrosPerMsg })
	cpuPerUnit = measMetric("server CPU µs/unit", "lower", "%.2f", func(m *measurement) float64 { return m.ServerCPUMicrosPerMsg })
	clientCPU  = measMetric("client CPU µs/msg", "-", "%.2f", func(m *measurement) float64 { return m.ClientCPUMicrosPerMsg })
	// clientCPUUnit says, times deliveries/s, how much of its core the load generator took: near
	// one second per second, the client was the limit.
	clientCPUUnit = measMetric("client CPU µs/unit", "-", "%.2f", func(m *measurement) float64 { return m.ClientCPUMicrosPerMsg })
	serverRSSMiB  = measMetric("server RSS MiB after", "lower", "%.0f", func(m *measurement) float64 {
		if m.After == nil {
			return math.NaN()
		}
		return float64(m.After.VmRSS) / (1 << 20)
	})
	foreign    = measMetric("foreign CPU (noise)", "n/a", "%.2f", func(m *measurement) float64 { return m.ForeignCPU })
	idleMetric = func(name, format string, f func(*measurement) float64) metric {
		return metric{name, "lower", format, func(m *measurement) float64 {
			if m.IdleConns == 0 || m.Err != "" {
				return math.NaN()
			}
			return f(m)
		}}
	}
	heapStack = idleMetric("heap+stack B/conn", "%.0f", func(m *measurement) float64 {
		if m.Before == nil || m.Before.Goroutines == 0 { // not a Go heap
			return math.NaN()
		}
		return m.HeapStackPerConn
	})
	heapStackPeak = idleMetric("heap+stack peak B/conn", "%.0f", func(m *measurement) float64 {
		if m.Samples == nil {
			return math.NaN()
		}
		return m.HeapStackPeak
	})
	rss          = idleMetric("RSS B/conn", "%.0f", func(m *measurement) float64 { return m.RSSPerConn })
	kernelSocket = idleMetric("kernel B/socket", "%.0f", func(m *measurement) float64 {
		if m.Samples == nil {
			return math.NaN()
		}
		return m.KernelPerSocket
	})
	// pingsPerConn proves the heartbeats ran: about 3 per connection at any -ping-interval (two
	// rounds held, a third while reading).
	pingsPerConn = metric{"pings answered/conn", "-", "%.1f", func(m *measurement) float64 {
		if m.Samples == nil || m.Err != "" {
			return math.NaN()
		}
		return m.PingsPerConn
	}}
	onPaperGB = idleMetric("1M conns on paper GB", "%.2f", func(m *measurement) float64 {
		if m.Samples == nil {
			return math.NaN()
		}
		return onPaper(m) / 1e9
	})
	goroutines = idleMetric("goroutines/conn", "%.2f", func(m *measurement) float64 {
		if m.Before == nil || m.Before.Goroutines == 0 {
			return math.NaN()
		}
		return m.GoroutinesPerConn
	})
)

func metricsFor(sc scenario, idleSuite bool) []metric {
	switch {
	case sc.kind == loadgen.ModeIdle && idleSuite:
		return []metric{heapStack, heapStackPeak, rss, goroutines, kernelSocket, onPaperGB, pingsPerConn, foreign}
	case sc.kind == loadgen.ModeIdle:
		return []metric{heapStack, rss, goroutines}
	case sc.kind == loadgen.ModeConnect:
		return []metric{handshakes, p50, p99, cpuPerUnit, errorsN, foreign}
	case sc.kind == loadgen.ModeFanout:
		return []metric{deliveries, p50, p90, p99, p999, maxLat, lost, published, errorsN, cpuPerUnit, clientCPUUnit, serverRSSMiB, foreign}
	case sc.window > 1:
		return []metric{msgsPerSec, jainIdx, perConnMin, perConnMax, p99, cpuPerMsg, clientCPU, errorsN, foreign}
	}
	return []metric{msgsPerSec, p50, p99, cpuPerMsg, clientCPU, errorsN, foreign}
}

// pair is one ratio column of the report: num's figure over den's.
type pair struct{ num, den string }

// idleRatioPairs are the idle suite's ratio columns: every server over raw gws, then wsgate over
// wsgate-goroutine (what parking saves) and over Centrifugo; servers not in impls are left out.
func idleRatioPairs(impls []string) []pair {
	var pairs []pair
	has := func(s string) bool { return slices.Contains(impls, s) }
	for _, o := range impls {
		if o != "gws" && has("gws") {
			pairs = append(pairs, pair{o, "gws"})
		}
	}
	for _, o := range []string{"wsgate-goroutine", "centrifugo", baseImpl} {
		if has(o) {
			pairs = append(pairs, pair{"wsgate", o})
		}
	}
	return pairs
}

// ratioPairs are the report's ratio columns: wsgate over every other server; in the cluster
// suite, every topology over wsgate on one node (what scaling out costs), then every wsgate
// cluster over every Centrifugo cluster of as many nodes.
func ratioPairs(c config) []pair {
	var pairs []pair
	if c.suite == suiteIdle {
		return idleRatioPairs(c.impls)
	}
	if c.suite != suiteCluster {
		for _, o := range c.impls {
			if o != "wsgate" {
				pairs = append(pairs, pair{"wsgate", o})
			}
		}
		return pairs
	}
	for _, o := range c.impls {
		if o != "wsgate" {
			pairs = append(pairs, pair{o, "wsgate"})
		}
	}
	for _, w := range c.impls {
		for _, o := range c.impls {
			tw, to := clusterTopologies[w], clusterTopologies[o]
			if tw.server == "wsgate" && to.server == "centrifugo" && tw.nodes > 1 && tw.nodes == to.nodes {
				pairs = append(pairs, pair{w, o})
			}
		}
	}
	return pairs
}

// report prints, per scenario and metric, the median over rounds for each implementation and the
// ratios of ratioPairs' medians, with the range of the per-round ratios (each round's
// measurements ran back to back).
func report(w io.Writer, c config, scenarios []scenario, all []measurement) {
	pairs := ratioPairs(c)
	head := []string{"scenario", "metric", "better"}
	align := []string{"---", "---", "---"}
	for _, impl := range c.impls {
		head, align = append(head, impl), append(align, "---:")
	}
	for _, p := range pairs {
		head, align = append(head, p.num+"/"+p.den), append(align, "---:")
	}
	fmt.Fprintf(w, "Medians of %d rounds; each ratio column is A/B of the medians (per-round ratios in brackets).\n\n", c.rounds)
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "| "+strings.Join(align, " | ")+" |")
	for _, sc := range scenarios {
		for _, mt := range metricsFor(sc, c.suite == suiteIdle) {
			perImpl := perRound(c, all, sc, mt)
			med := map[string]float64{}
			cells := []string{sc.name, mt.name, mt.better}
			for _, impl := range c.impls {
				med[impl] = median(perImpl[impl])
				cells = append(cells, fmtNum(mt.format, med[impl]))
			}
			for _, p := range pairs {
				if mt.better == "n/a" { // a property of the machine, not of the server: no ratio
					cells = append(cells, "")
					continue
				}
				cells = append(cells, ratioCell(med[p.num], med[p.den], perImpl[p.num], perImpl[p.den]))
			}
			fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
		}
	}
}

// perRound is mt of every implementation in scenario sc, indexed by round-1 (NaN where none).
func perRound(c config, all []measurement, sc scenario, mt metric) map[string][]float64 {
	perImpl := map[string][]float64{}
	for _, impl := range c.impls {
		perImpl[impl] = make([]float64, c.rounds)
		for i := range perImpl[impl] {
			perImpl[impl][i] = math.NaN()
		}
	}
	for i := range all {
		m := &all[i]
		if m.Scenario == sc.name && perImpl[m.Impl] != nil {
			perImpl[m.Impl][m.Round-1] = mt.get(m)
		}
	}
	return perImpl
}

func ratioCell(a, b float64, as, bs []float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	var rs []float64
	for i := range as {
		if !math.IsNaN(as[i]) && !math.IsNaN(bs[i]) && bs[i] != 0 {
			rs = append(rs, as[i]/bs[i])
		}
	}
	s := fmt.Sprintf("%.2f×", a/b)
	if len(rs) > 1 {
		s += fmt.Sprintf(" [%.2f–%.2f]", slices.Min(rs), slices.Max(rs))
	}
	return s
}

// median of the values that are not NaN; NaN if none.
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func fmtNum(format string, x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf(format, x)
}
