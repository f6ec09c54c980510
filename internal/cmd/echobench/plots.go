package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/internal/loadgen"
)

// writeRaw writes every measurement as JSON, without the time lines (the HTML report has them).
func writeRaw(path string, all []measurement) error {
	out := make([]measurement, len(all))
	for i, m := range all {
		if m.Load != nil {
			l := *m.Load
			l.Series = nil
			m.Load = &l
		}
		out[i] = m
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// representative picks, per server, the round of sc whose p99 is the median of its rounds: the
// run whose curves a plot shows.
func representative(c config, sc scenario, all []measurement) []loadgen.Named {
	var runs []loadgen.Named
	for _, impl := range c.impls {
		var ms []*measurement
		for i := range all {
			if m := &all[i]; m.Scenario == sc.name && m.Impl == impl && m.Load != nil && m.Err == "" {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			continue
		}
		slices.SortFunc(ms, func(a, b *measurement) int {
			return int(math.Copysign(1, a.Load.P99Micros-b.Load.P99Micros))
		})
		runs = append(runs, loadgen.Named{Name: impl, Result: ms[(len(ms)-1)/2].Load})
	}
	return runs
}

// writePlots writes -plots (an SVG of latency by percentile per scenario) and -html (every
// scenario's runs, side by side).
func writePlots(c config, scenarios []scenario, all []measurement) error {
	var sections []loadgen.Section
	var errs []error
	for _, sc := range scenarios {
		if sc.kind == loadgen.ModeIdle {
			continue
		}
		runs := representative(c, sc, all)
		if len(runs) == 0 {
			continue
		}
		sections = append(sections, loadgen.Section{Title: sc.name + " (the round with the median p99, per server)", Runs: runs})
		if c.plots != "" {
			chart := loadgen.LatencyChart(sc.name+": latency by percentile (round with the median p99)", runs)
			name := filepath.Join(c.plots, slug(sc.name)+".svg")
			errs = append(errs, os.MkdirAll(c.plots, 0o755), os.WriteFile(name, []byte(chart.SVG()+"\n"), 0o644))
		}
	}
	if c.html != "" && len(sections) > 0 {
		f, err := os.Create(c.html)
		if err != nil {
			return err
		}
		title := "echobench -suite " + c.suite
		errs = append(errs, loadgen.WriteReport(f, title, "go run ./internal/cmd/echobench "+strings.Join(os.Args[1:], " "), sections), f.Close())
	}
	return errors.Join(errs...)
}

// slug turns a scenario name into a file name: "echo 1000×1KiB" → "echo-1000x1KiB".
func slug(s string) string {
	r := strings.NewReplacer(" ", "-", "×", "x", "/", "-", "*", "x")
	return r.Replace(s)
}
