package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// poolTargets are throughput targets: wsgate's msgs/s at least this times the other server's.
// gws and gorilla: the issue "The seed's server, done right"; wsgate-base (-base): the overhead
// target of metrics on against off (issue 12), the one A/B run with a target; for other -base
// runs read the ratio, not the count.
var poolTargets = []struct {
	impl string
	min  float64
}{{"gws", 0.95}, {"gorilla", 1.0}, {baseImpl, 0.98}}

// pool reads the -raw files of several runs and prints, per scenario and per raw server, the
// per-round ratios of wsgate's throughput and server CPU to that server's, pooled across runs.
// A round measures the servers back to back, so each round of each run is one sample: more
// rounds than one run can afford, on a machine whose speed drifts between rounds.
func pool(w io.Writer, files []string) error {
	type key struct {
		file, scenario string
		round          int
	}
	rounds := map[key]map[string]measurement{}
	var order []string
	for _, f := range slices.Compact(slices.Sorted(slices.Values(files))) { // each run once
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var ms []measurement
		if err := json.Unmarshal(b, &ms); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, m := range ms {
			if m.Load == nil || m.IdleConns > 0 || m.Load.MsgsPerSec <= 0 {
				continue
			}
			k := key{f, m.Scenario, m.Round}
			if rounds[k] == nil {
				rounds[k] = map[string]measurement{}
			}
			rounds[k][m.Impl] = m
			if !slices.Contains(order, m.Scenario) {
				order = append(order, m.Scenario)
			}
		}
	}
	fmt.Fprintln(w, "| scenario | wsgate / | rounds | msgs/s: median [min–max] | rounds ≥ target | server CPU/msg: median |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- | ---: | ---: |")
	for _, sc := range order {
		for _, t := range poolTargets {
			var tput, cpu []float64
			for k, byImpl := range rounds {
				ws, ok1 := byImpl["wsgate"]
				o, ok2 := byImpl[t.impl]
				if k.scenario != sc || !ok1 || !ok2 {
					continue
				}
				tput = append(tput, ws.Load.MsgsPerSec/o.Load.MsgsPerSec)
				if o.ServerCPUMicrosPerMsg > 0 {
					cpu = append(cpu, ws.ServerCPUMicrosPerMsg/o.ServerCPUMicrosPerMsg)
				}
			}
			if len(tput) == 0 {
				continue
			}
			hit := 0
			for _, r := range tput {
				if r >= t.min {
					hit++
				}
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.3f× [%.2f–%.2f] | %d/%d (≥ %.2f) | %.3f× |\n", sc, t.impl, len(tput),
				median(tput), slices.Min(tput), slices.Max(tput), hit, len(tput), t.min, median(cpu))
		}
	}
	return nil
}
