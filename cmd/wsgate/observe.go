package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/internal/metrics"
)

// readyTimeout bounds one broker readiness check (shared by the /readyz requests and scrapes
// that wait for it).
const readyTimeout = 2 * time.Second

// readyz answers 200 while the node serves, and 503 once shutdown has begun or while the broker
// does not answer (NATS disconnected, or JetStream silent): a load balancer sends no new
// connection to a node that could not serve it. /healthz stays 200 meanwhile: the process is alive.
func (g *node) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if err := g.ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, err.Error())
		return
	}
	_, _ = io.WriteString(w, "ready")
}

// ready is /readyz's check: nil, or why the node is not ready.
func (g *node) ready() error {
	if g.stopping.Load() {
		return errors.New("shutting down")
	}
	if g.readyCache != nil {
		if err := g.readyCache.Get(); err != nil {
			return fmt.Errorf("broker not ready: %w", err)
		}
	}
	return nil
}

// readyTTL is how long a broker readiness answer is reused. /readyz is public on -addr and
// every /metrics scrape reads wsgate_ready: without it, each anonymous request would be a broker
// round trip (with NATS, a JetStream STREAM.INFO to the stream's leader).
const readyTTL = time.Second

// newReadyCache shares h's readiness among /readyz and wsgate_ready (metrics.Shared, as the
// scrapes share Server.Metrics): an answer is reused for readyTTL, and while a check is under
// way, callers wait for it rather than start their own. A check is bounded by readyTimeout, not
// by any caller's context, so the one that runs it serves those that wait.
func newReadyCache(h broker.Health) *metrics.Shared[error] {
	return metrics.NewShared(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		return h.Ready(ctx)
	}, readyTTL)
}

// metricsHandler serves the node's counters in Prometheus' format; ah is the backend API's
// handler, nil when the API is off. The one handler serves /metrics on -addr or on
// -metrics-listen, and so the admin page's polls too: its scrapes share one walk of the
// connections (Server.Metrics) per metrics.ServerMaxAge.
func (g *node) metricsHandler(ah http.Handler) http.Handler {
	ws := metrics.NewShared(g.ws.Metrics, metrics.ServerMaxAge)
	src := metrics.Sources{Server: ws.Get, Hub: g.hub.Metrics, Gateway: g.gw.Metrics,
		Ready: func() bool { return g.ready() == nil }}
	if ah != nil {
		src.API = func() (api.Metrics, bool) { return api.MetricsOf(ah) }
	}
	return metrics.NewHandler(src)
}

// debugMux is the -metrics-listen listener's routes: /metrics, /readyz, /healthz and pprof.
// pprof is only ever here, on the listener an operator chose to keep private, never on -addr:
// profiles show code paths and let a caller spend the server's CPU.
func debugMux(mh http.Handler, readyz http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", mh)
	mux.HandleFunc("GET /readyz", readyz)
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
