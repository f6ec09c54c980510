package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHistogramIsCumulative: the hub's per-bucket counts become Prometheus' cumulative buckets,
// with the observations above every bound only in the count.
func TestHistogramIsCumulative(t *testing.T) {
	var h hub.Histogram
	h.Counts[0], h.Counts[2], h.Counts[len(h.Counts)-1] = 1, 2, 4
	h.Count, h.Sum = 7, 3.5
	var m dto.Metric
	if err := histogram(dBroker, h, "publish").Write(&m); err != nil {
		t.Fatal(err)
	}
	got := m.Histogram
	if got.GetSampleCount() != 7 || got.GetSampleSum() != 3.5 || len(got.Bucket) != len(hub.HistogramBounds) {
		t.Fatalf("histogram %v", got)
	}
	want := []uint64{1, 1, 3}
	for i, w := range want {
		if b := got.Bucket[i]; b.GetCumulativeCount() != w || b.GetUpperBound() != hub.HistogramBounds[i] {
			t.Errorf("bucket %d: le %v count %d, want le %v count %d", i, b.GetUpperBound(), b.GetCumulativeCount(), hub.HistogramBounds[i], w)
		}
	}
	if last := got.Bucket[len(got.Bucket)-1].GetCumulativeCount(); last != 3 {
		t.Errorf("the last finite bucket holds %d, want 3 (4 are above every bound)", last)
	}
}

// collect returns what c emits for d, each series written out.
func collect(t *testing.T, c *Collector, d *prometheus.Desc) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	var out []*dto.Metric
	for m := range ch {
		if m.Desc() != d {
			continue
		}
		var w dto.Metric
		if err := m.Write(&w); err != nil {
			t.Fatal(err)
		}
		out = append(out, &w)
	}
	return out
}

// TestAPIDurationEmitted: the API's times become wsgate_api_request_duration_seconds, a summary
// per endpoint whose count is the endpoint's requests of every status and whose sum is its time.
func TestAPIDurationEmitted(t *testing.T) {
	m := api.Metrics{Requests: make([][len(api.MetricsStatuses) + 1]uint64, len(api.MetricsEndpoints)),
		Seconds: make([]float64, len(api.MetricsEndpoints))}
	m.Requests[0][0], m.Requests[0][2], m.Requests[0][len(api.MetricsStatuses)] = 3, 1, 1 // 200, 401, other
	m.Seconds[0] = 0.25
	c := NewCollector(Sources{API: func() (api.Metrics, bool) { return m, true }})
	got := collect(t, c, dAPITime)
	if len(got) != len(api.MetricsEndpoints) {
		t.Fatalf("%d series, want one per endpoint (%d)", len(got), len(api.MetricsEndpoints))
	}
	for _, s := range got {
		var endpoint string
		for _, l := range s.Label {
			if l.GetName() == "endpoint" {
				endpoint = l.GetValue()
			}
		}
		wantCount, wantSum := uint64(0), 0.0
		if endpoint == api.MetricsEndpoints[0] {
			wantCount, wantSum = 5, 0.25
		}
		if s.Summary.GetSampleCount() != wantCount || s.Summary.GetSampleSum() != wantSum {
			t.Errorf("endpoint %q: count %d sum %v, want %d and %v", endpoint, s.Summary.GetSampleCount(),
				s.Summary.GetSampleSum(), wantCount, wantSum)
		}
	}
	if got := collect(t, NewCollector(Sources{API: func() (api.Metrics, bool) { return api.Metrics{}, false }}), dAPITime); len(got) != 0 {
		t.Errorf("no API on the node, yet %d series", len(got))
	}
}
