package loadgen

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Named is a result with the name a report gives it (the server it ran against, say).
type Named struct {
	Name   string
	Result *Result
}

// Section is one part of a report: runs of one scenario, side by side.
type Section struct {
	Title string
	Runs  []Named
}

// WriteHTML writes a self-contained HTML report of runs: a summary table, the latency by
// percentile, and throughput and latency over time, as inline SVG. It loads nothing from
// anywhere: no scripts, no styles or fonts from outside.
func WriteHTML(w io.Writer, title, command string, runs []Named) error {
	return WriteReport(w, title, command, []Section{{Runs: runs}})
}

// WriteReport writes a self-contained HTML report of several sections, as WriteHTML does for one.
func WriteReport(w io.Writer, title, command string, sections []Section) error {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	b.WriteString(`<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:12px 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}
th:first-child,td:first-child{text-align:left}
code{background:#f4f4f4;padding:2px 4px}
figure{margin:16px 0}
.err{color:#b00;font-weight:bold}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(title))
	fmt.Fprintf(&b, "<p>%s · %s</p>\n", esc(time.Now().UTC().Format(time.RFC3339)), esc(machine()))
	if command != "" {
		fmt.Fprintf(&b, "<p><code>%s</code></p>\n", esc(command))
	}
	for _, sec := range sections {
		if sec.Title != "" {
			fmt.Fprintf(&b, "<h2>%s</h2>\n", esc(sec.Title))
		}
		writeSection(&b, sec.Runs)
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// LatencyChart is the latency-by-percentile chart of runs (those with a spectrum).
func LatencyChart(title string, runs []Named) *Chart {
	c := &Chart{Title: title, XLabel: "percentile", YLabel: "latency (ms)", XTicks: PercentileTicks, LogY: true}
	for _, r := range runs {
		if len(r.Result.Spectrum) > 0 {
			c.Lines = append(c.Lines, LatencyLine(r.Name, r.Result.Spectrum))
		}
	}
	return c
}

func writeSection(b *strings.Builder, runs []Named) {
	writeSummary(b, runs)
	for _, r := range runs {
		if r.Result.Server != nil {
			var t strings.Builder
			r.Result.Server.Print(&t)
			fmt.Fprintf(b, "<p>The server's side (%s), from its metrics:</p>\n<pre>%s</pre>\n", esc(r.Name), esc(t.String()))
		}
	}
	var rate, p99 []Line
	unit := ""
	for _, r := range runs {
		res := r.Result
		ln := Line{Name: r.Name}
		lp50 := Line{Name: r.Name + " p50"}
		lp99 := Line{Name: r.Name + " p99"}
		if len(runs) > 1 {
			lp99.Name = r.Name
		}
		for _, s := range res.Series {
			ln.X = append(ln.X, s.T)
			if res.Mode == ModeIdle {
				ln.Y = append(ln.Y, float64(s.Conns))
			} else {
				ln.Y = append(ln.Y, s.Rate)
			}
			lp50.X, lp50.Y = append(lp50.X, s.T), append(lp50.Y, s.P50/1e3)
			lp99.X, lp99.Y = append(lp99.X, s.T), append(lp99.Y, s.P99/1e3)
		}
		rate = append(rate, ln)
		if res.Mode != ModeIdle {
			if len(runs) == 1 {
				p99 = append(p99, lp50)
			}
			p99 = append(p99, lp99)
		}
		unit = rateUnit(res.Mode)
	}
	if lat := LatencyChart("Latency by percentile", runs); len(lat.Lines) > 0 {
		fmt.Fprintf(b, "<figure>%s</figure>\n", lat.SVG())
	}
	if len(rate) > 0 {
		title := "Throughput over time"
		if unit == "connections open" {
			title = "Connections over time"
		}
		c := Chart{Title: title, XLabel: "seconds since start (dialling included)", YLabel: unit, Lines: rate}
		fmt.Fprintf(b, "<figure>%s</figure>\n", c.SVG())
	}
	if len(p99) > 0 {
		title := "Latency over time (p50 and p99 per interval)"
		if len(runs) > 1 {
			title = "p99 latency over time (per interval)"
		}
		c := Chart{Title: title, XLabel: "seconds since start", YLabel: "latency (ms)", Lines: p99, LogY: true}
		fmt.Fprintf(b, "<figure>%s</figure>\n", c.SVG())
	}
}

func rateUnit(m Mode) string {
	switch m {
	case ModeConnect:
		return "handshakes/s"
	case ModeFanout:
		return "deliveries/s"
	case ModeIdle:
		return "connections open"
	}
	return "messages/s"
}

func writeSummary(b *strings.Builder, runs []Named) {
	b.WriteString("<table><tr><th>run</th><th>shape</th><th>rate</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>Jain</th><th>errors</th></tr>\n")
	for _, r := range runs {
		res := r.Result
		l := res.Latency
		rate := fmt.Sprintf("%.0f %s", res.MsgsPerSec, rateUnit(res.Mode))
		lats := []string{dur(l.P50), dur(l.P90), dur(l.P99), dur(l.P999), dur(l.Max)}
		if res.Mode == ModeIdle {
			rate = fmt.Sprintf("%d open", res.Opened)
			if res.PID > 0 {
				rate += fmt.Sprintf(", %.0f B/conn RSS", res.RSSPerConn)
			}
			lats = []string{"–", "–", "–", "–", "–"}
		}
		errs := fmt.Sprint(res.Errors)
		if res.Errors > 0 {
			errs = fmt.Sprintf(`<span class="err">%d</span> (%s)`, res.Errors, esc(res.FirstError))
		}
		fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.3f</td><td>%s</td></tr>\n",
			esc(r.Name), esc(string(res.Mode)+": "+res.shape()), esc(rate), lats[0], lats[1], lats[2], lats[3], lats[4], res.Jain, errs)
	}
	b.WriteString("</table>\n")
	for _, r := range runs {
		if r.Result.Mode == ModeFanout {
			res := r.Result
			fmt.Fprintf(b, "<p>%s: %d publications, %d refused; lost %d, duplicates %d, out of order %d, offset gaps %d.</p>\n",
				esc(r.Name), res.Published, res.PublishErrors, res.Lost, res.Duplicates, res.OutOfOrder, res.OffsetGaps)
		}
	}
}

// machine describes where the report was made.
func machine() string {
	s := fmt.Sprintf("%s %s/%s, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		s += ", Linux " + strings.TrimSpace(string(b))
	}
	return s
}
