package gateway

import (
	"github.com/wsgate/wsgate/gateway/events"
	"github.com/wsgate/wsgate/gateway/proxy"
)

// Metrics is a snapshot of a Gateway's counters, for an exporter to read at scrape time (see
// docs/METRICS.md). The backend API counts its own requests: api.MetricsOf.
type Metrics struct {
	Hooks  proxy.Metrics // the backend calls, by proxy.Hooks; zero without a backend URL
	Events events.Stats  // the connect and disconnect events; zero without backend.events_url
}

// Metrics returns a snapshot of the gateway's counters.
func (g *Gateway) Metrics() Metrics {
	var m Metrics
	if g.be != nil {
		m.Hooks = g.be.Metrics()
	}
	if g.ev != nil {
		m.Events = g.ev.Stats()
	}
	return m
}
