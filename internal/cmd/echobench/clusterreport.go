package main

import (
	"fmt"
	"io"
	"strings"
)

// reportCluster prints the cluster suite's summary: a row per scenario and topology with the
// medians that issue 10 asks about (deliveries/s, p50, p99, lost) and their ratios to wsgate on one
// node (what scaling out costs at the same load) and to each Centrifugo cluster of as many nodes
// (the same topology).
func reportCluster(w io.Writer, c config, scenarios []scenario, all []measurement) {
	var rivals []string // Centrifugo clusters, for the "same topology" columns
	for _, impl := range c.impls {
		if t := clusterTopologies[impl]; t.server == "centrifugo" && t.nodes > 1 {
			rivals = append(rivals, impl)
		}
	}
	head := []string{"scenario", "topology", "deliveries/s", "p50 ms", "p99 ms", "lost", "server CPU µs/delivery",
		"p50 / wsgate 1 node", "p99 / wsgate 1 node"}
	for _, r := range rivals {
		head = append(head, "deliveries/s / "+r, "p99 / "+r)
	}
	fmt.Fprintf(w, "\nSummary: medians of %d rounds; ratios of medians, per-round ratios in brackets.\n\n", c.rounds)
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "| --- | --- |"+strings.Repeat(" ---: |", len(head)-2))
	for _, sc := range scenarios {
		rate, p50s, p99s := perRound(c, all, sc, deliveries), perRound(c, all, sc, p50), perRound(c, all, sc, p99)
		lostN, cpu := perRound(c, all, sc, lost), perRound(c, all, sc, cpuPerUnit)
		for _, impl := range c.impls {
			cells := []string{sc.name, impl, fmtNum("%.0f", median(rate[impl])), fmtNum("%.1f", median(p50s[impl])/1e3),
				fmtNum("%.1f", median(p99s[impl])/1e3), fmtNum("%.0f", median(lostN[impl])), fmtNum("%.2f", median(cpu[impl]))}
			ratio := func(m map[string][]float64, den string) string {
				if impl == den {
					return ""
				}
				return ratioCell(median(m[impl]), median(m[den]), m[impl], m[den])
			}
			cells = append(cells, ratio(p50s, "wsgate"), ratio(p99s, "wsgate"))
			for _, r := range rivals {
				if clusterTopologies[impl].server != "wsgate" || clusterTopologies[impl].nodes != clusterTopologies[r].nodes {
					cells = append(cells, "", "")
					continue
				}
				cells = append(cells, ratio(rate, r), ratio(p99s, r))
			}
			fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
		}
	}
}
