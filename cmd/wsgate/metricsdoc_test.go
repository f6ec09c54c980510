package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"
)

// scrapeAll scrapes a running server with every source on (the API too) over real HTTP.
func scrapeAll(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	r := startRun(t, "-api-path", "/api", "-api-key-file", writeFile(t, "keys", "api-key-0123456789abcdef\n"))
	return scrape(t, "http://"+r.addr+"/metrics")
}

var docRow = regexp.MustCompile("(?m)^\\| `([a-z_:][a-z0-9_:]*)` \\| (counter|gauge|histogram|summary|untyped) \\|")

// TestMetricsDocumented: docs/METRICS.md lists every metric a running server serves, with its
// type, and nothing it does not serve.
func TestMetricsDocumented(t *testing.T) {
	fams := scrapeAll(t)
	b, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range docRow.FindAllStringSubmatch(string(b), -1) {
		if _, dup := documented[m[1]]; dup {
			t.Errorf("docs/METRICS.md lists %s twice", m[1])
		}
		documented[m[1]] = m[2]
	}
	for name, f := range fams {
		typ := strings.ToLower(f.GetType().String())
		switch d, ok := documented[name]; {
		case !ok:
			t.Errorf("served but not in docs/METRICS.md: %s (%s)", name, typ)
		case d != typ:
			t.Errorf("docs/METRICS.md says %s is a %s; served as a %s", name, d, typ)
		}
	}
	for name := range documented {
		if fams[name] == nil {
			t.Errorf("docs/METRICS.md lists %s, which is not served", name)
		}
	}
	// The names every branch relies on (obs-plan): they must exist as given.
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines",
		"go_memstats_heap_inuse_bytes", "wsgate_connections", "wsgate_connections_opened_total",
		"wsgate_connections_closed_total", "wsgate_handshakes_total", "wsgate_messages_received_total",
		"wsgate_messages_sent_total", "wsgate_bytes_received_total", "wsgate_bytes_sent_total",
		"wsgate_send_queue_dropped_total", "wsgate_slow_consumer_closes_total", "wsgate_hub_channels",
		"wsgate_hub_subscriptions", "wsgate_hub_publications_total", "wsgate_hub_deliveries_total",
		"wsgate_api_requests_total"} {
		if fams[name] == nil {
			t.Errorf("the agreed metric %s is not served", name)
		}
	}
}

var metricName = regexp.MustCompile(`\b(?:wsgate|process|go)_[a-z0-9_]+\b`)

// TestDeployFilesUseServedMetrics: every metric the Grafana dashboard and the Prometheus rules
// use is served by a running server (a histogram's or summary's _bucket, _sum and _count by
// their family), and both files have the shape their tools read.
func TestDeployFilesUseServedMetrics(t *testing.T) {
	fams := scrapeAll(t)
	served := func(name string) bool {
		if fams[name] != nil {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && fams[base] != nil {
				typ := fams[base].GetType()
				return typ == dto.MetricType_HISTOGRAM || (suf != "_bucket" && typ == dto.MetricType_SUMMARY)
			}
		}
		return false
	}
	check := func(file, where, expr string) {
		t.Helper()
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 && !strings.Contains(expr, "up{") {
			t.Errorf("%s: %s uses no metric: %q", file, where, expr)
		}
		for _, n := range names {
			if !served(n) {
				t.Errorf("%s: %s uses %s, which a running server does not serve", file, where, n)
			}
		}
	}

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Type  string
				Query any
			}
		}
	}
	b, err := os.ReadFile("../../deploy/grafana/wsgate.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/wsgate.json: %v", err)
	}
	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("wsgate.json", "panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			check("wsgate.json", "variable "+v.Name, q)
		}
	}
	for _, want := range []string{"Connections open", "Handshakes per second by status", "Messages per second",
		"Bytes per second", "Drops and slow consumers", "Hub: publications and deliveries per second",
		"Broker latency (p50, p99)", "CPU (cores)", "Memory"} {
		if !slices.Contains(titles, want) {
			t.Errorf("the dashboard has no panel %q", want)
		}
	}

	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	b, err = os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Alert == "" || r.Expr == "" || r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %q lacks a name, expr, for, severity or summary", r.Alert)
			}
			check("alerts.yml", "alert "+r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"WsgateNodeDown", "WsgateNotReady", "WsgateSlowConsumerClosesRising", "WsgateSendQueueDrops",
		"WsgateHandshakesRefused", "WsgateBrokerLatencyHigh", "WsgateMemoryHigh"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml has no rule %s", want)
		}
	}
}
