package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/api"
)

// TestMetricsTimeRealRequests: a request over a loopback socket counts once in its endpoint's
// row, and its time, which covers the Node call (1 ms here at least), in its endpoint's Seconds;
// no other endpoint moves. A path that is none of the endpoints counts and times as "unknown".
func TestMetricsTimeRealRequests(t *testing.T) {
	const nodeTime = time.Millisecond
	e := newEnv(t, nil)
	h, err := api.New(stubNode{e.node, func(ctx context.Context) (api.NodeInfo, error) {
		time.Sleep(nodeTime)
		return e.node.Info(ctx)
	}}, api.Options{Keys: []string{testKey}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.api = newServer(t, h)
	snapshot := func() api.Metrics {
		t.Helper()
		m, ok := api.MetricsOf(h)
		if !ok {
			t.Fatal("MetricsOf: not the API's handler")
		}
		return m
	}
	info := slices.Index(api.MetricsEndpoints, "info")
	unknown := slices.Index(api.MetricsEndpoints, "unknown")
	if info < 0 || unknown < 0 || len(api.MetricsEndpoints) != len(api.Endpoints())+1 {
		t.Fatalf("MetricsEndpoints %v", api.MetricsEndpoints)
	}

	check := func(before, after api.Metrics, e, status int, atLeast time.Duration) {
		t.Helper()
		s := slices.Index(api.MetricsStatuses[:], status)
		for i := range api.MetricsEndpoints {
			calls, secs := after.Calls(i)-before.Calls(i), after.Seconds[i]-before.Seconds[i]
			switch {
			case i != e && (calls != 0 || secs != 0):
				t.Errorf("%s moved: %d calls, %v s", api.MetricsEndpoints[i], calls, secs)
			case i == e && (calls != 1 || after.Requests[i][s]-before.Requests[i][s] != 1):
				t.Errorf("%s: %d calls (%d with status %d), want 1", api.MetricsEndpoints[i], calls,
					after.Requests[i][s]-before.Requests[i][s], status)
			case i == e && (secs <= 0 || secs < atLeast.Seconds()):
				t.Errorf("%s: %v s more, want > 0 and at least %v", api.MetricsEndpoints[i], secs, atLeast)
			}
		}
	}

	before := snapshot()
	if a := e.post("/api/info", `{}`); a.status != http.StatusOK {
		t.Fatalf("info: %d %s", a.status, a.body)
	}
	after := snapshot()
	check(before, after, info, http.StatusOK, nodeTime)

	if a := e.post("/api/nowhere", `{}`); a.status != http.StatusNotFound {
		t.Fatalf("an unknown path: %d %s", a.status, a.body)
	}
	check(after, snapshot(), unknown, http.StatusNotFound, 0)
}
