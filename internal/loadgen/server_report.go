package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// ServerReport is the server's side of a run: per node, and in sum over those whose metrics
// answered.
type ServerReport struct {
	Nodes []ServerNode `json:"nodes"`
	// Sum over the nodes with figures, when there are two or more; a figure is summed only when
	// every one of them has it. Its peaks are the sum of each node's peak.
	Sum *ServerFigures `json:"sum,omitempty"`
}

// ServerNode is one node's figures, or why there are none.
type ServerNode struct {
	MetricsURL string   `json:"metrics_url"`
	Targets    []string `json:"targets"`
	Available  bool     `json:"available"`
	Reason     string   `json:"reason,omitempty"` // why not available
	// Note says what limits the figures: scrapes that failed, the final one above all (the figures
	// then end at the last sample that answered), or a counter that went back (a restart).
	Note string `json:"note,omitempty"`
	ServerFigures
}

// ServerFigures is what a server spent over a run. A figure whose metric the server does not
// serve is nil (left out of the JSON); a zero is a zero.
type ServerFigures struct {
	Seconds float64 `json:"seconds,omitempty"` // between the first and the last sample
	Samples int     `json:"samples,omitempty"`
	// CPUSeconds is process_cpu_seconds_total's increase; CPUPercent the same over Seconds, in
	// percent of one core.
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	// Gauges, before (first sample), peak (highest sample) and after (last sample).
	RSS         *Span `json:"rss_bytes,omitempty"`
	HeapInuse   *Span `json:"heap_inuse_bytes,omitempty"`
	Goroutines  *Span `json:"goroutines,omitempty"`
	Connections *Span `json:"connections,omitempty"`
	// Increases of wsgate_send_queue_dropped_total and wsgate_slow_consumer_closes_total.
	SendQueueDropped   *float64 `json:"send_queue_dropped,omitempty"`
	SlowConsumerCloses *float64 `json:"slow_consumer_closes,omitempty"`
}

// Span is a gauge over a run.
type Span struct {
	Before float64 `json:"before"`
	Peak   float64 `json:"peak"`
	After  float64 `json:"after"`
}

func (n *nodeWatch) report() ServerNode {
	out := ServerNode{MetricsURL: n.target.MetricsURL, Targets: n.target.Targets}
	if n.unavailable != "" {
		out.Reason = n.unavailable
		return out
	}
	out.Available = true
	var notes []string
	if n.finalErr != nil {
		notes = append(notes, fmt.Sprintf("the last scrape failed (%v): figures up to the sample before", n.finalErr))
	}
	if n.failed > 0 {
		notes = append(notes, fmt.Sprintf("%d scrapes failed during the run", n.failed))
	}
	f := &out.ServerFigures
	f.Samples = n.samples
	f.Seconds = n.last.at.Sub(n.first.at).Seconds()
	reset := false
	delta := func(name string) *float64 {
		a, ok1 := n.first.v[name]
		b, ok2 := n.last.v[name]
		if !ok1 || !ok2 {
			return nil
		}
		if b < a {
			reset = true
			return nil
		}
		d := b - a
		return &d
	}
	f.CPUSeconds = delta(metricCPU)
	if f.CPUSeconds != nil && f.Seconds > 0 {
		p := *f.CPUSeconds / f.Seconds * 100
		f.CPUPercent = &p
	}
	f.SendQueueDropped = delta(metricDropped)
	f.SlowConsumerCloses = delta(metricSlow)
	if reset {
		notes = append(notes, "a counter went back (the server restarted?): its increase is not given")
	}
	span := func(name string) *Span {
		a, ok1 := n.first.v[name]
		b, ok2 := n.last.v[name]
		if !ok1 || !ok2 {
			return nil
		}
		return &Span{Before: a, Peak: n.peak[name], After: b}
	}
	f.RSS, f.HeapInuse = span(metricRSS), span(metricHeapInuse)
	f.Goroutines, f.Connections = span(metricGoroutines), span(metricConns)
	out.Note = strings.Join(notes, "; ")
	return out
}

// sumNodes adds up the nodes with figures, when there are two or more.
func sumNodes(nodes []ServerNode) *ServerFigures {
	var avail []*ServerFigures
	for i := range nodes {
		if nodes[i].Available {
			avail = append(avail, &nodes[i].ServerFigures)
		}
	}
	if len(avail) < 2 {
		return nil
	}
	s := &ServerFigures{}
	for _, f := range avail {
		s.Seconds = max(s.Seconds, f.Seconds)
		s.Samples += f.Samples
	}
	addF := func(get func(*ServerFigures) *float64) *float64 {
		return sumOf(avail, get, func(sum, v *float64) { *sum += *v })
	}
	addS := func(get func(*ServerFigures) *Span) *Span {
		return sumOf(avail, get, func(sum, v *Span) {
			sum.Before += v.Before
			sum.Peak += v.Peak
			sum.After += v.After
		})
	}
	s.CPUSeconds = addF(func(f *ServerFigures) *float64 { return f.CPUSeconds })
	s.CPUPercent = addF(func(f *ServerFigures) *float64 { return f.CPUPercent })
	s.SendQueueDropped = addF(func(f *ServerFigures) *float64 { return f.SendQueueDropped })
	s.SlowConsumerCloses = addF(func(f *ServerFigures) *float64 { return f.SlowConsumerCloses })
	s.RSS = addS(func(f *ServerFigures) *Span { return f.RSS })
	s.HeapInuse = addS(func(f *ServerFigures) *Span { return f.HeapInuse })
	s.Goroutines = addS(func(f *ServerFigures) *Span { return f.Goroutines })
	s.Connections = addS(func(f *ServerFigures) *Span { return f.Connections })
	return s
}

// sumOf adds up what get finds in every one of figs, or is nil if one lacks it.
func sumOf[T any](figs []*ServerFigures, get func(*ServerFigures) *T, add func(sum, v *T)) *T {
	var sum T
	for _, f := range figs {
		v := get(f)
		if v == nil {
			return nil
		}
		add(&sum, v)
	}
	return &sum
}

// Print writes the server's side of the summary: a few lines per node, then the sum.
func (r *ServerReport) Print(w io.Writer) {
	if r == nil {
		return
	}
	for _, n := range r.Nodes {
		if !n.Available {
			fmt.Fprintf(w, "  server %s: metrics not available (%s: %s)\n", strings.Join(n.Targets, ", "), n.MetricsURL, n.Reason)
			continue
		}
		fmt.Fprintf(w, "  server %s (%s, %d samples over %.1fs):\n", strings.Join(n.Targets, ", "), n.MetricsURL, n.Samples, n.Seconds)
		n.ServerFigures.print(w)
		if n.Note != "" {
			fmt.Fprintf(w, "    note: %s\n", n.Note)
		}
	}
	if r.Sum != nil {
		fmt.Fprintf(w, "  servers in sum (peaks: the sum of each node's):\n")
		r.Sum.print(w)
	}
}

func (f *ServerFigures) print(w io.Writer) {
	cpu := "n/a"
	if f.CPUSeconds != nil {
		cpu = fmt.Sprintf("%.2fs", *f.CPUSeconds)
		if f.CPUPercent != nil {
			cpu += fmt.Sprintf(" (%.0f%% of one core)", *f.CPUPercent)
		}
	}
	fmt.Fprintf(w, "    cpu %s, rss %s, heap in use %s\n", cpu, spanBytes(f.RSS), spanBytes(f.HeapInuse))
	fmt.Fprintf(w, "    goroutines %s, connections %s, send-queue drops %s, slow-consumer closes %s\n",
		spanCount(f.Goroutines), spanCount(f.Connections), count(f.SendQueueDropped), count(f.SlowConsumerCloses))
}

func spanBytes(s *Span) string {
	if s == nil {
		return "n/a"
	}
	return fmt.Sprintf("%s at end (before %s, peak %s)", mib(uint64(s.After)), mib(uint64(s.Before)), mib(uint64(s.Peak)))
}

func spanCount(s *Span) string {
	if s == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f/%.0f/%.0f before/peak/after", s.Before, s.Peak, s.After)
}

func count(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", *v)
}
