package metrics

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

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
