package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/internal/metrics"
)

// readyTimeout bounds the broker's readiness check of one /readyz request.
const readyTimeout = 2 * time.Second

// readyz answers 200 while the node serves, and 503 once shutdown has begun or while the broker
// does not answer (NATS disconnected, or JetStream silent): a load balancer sends no new
// connection to a node that could not serve it. /healthz stays 200 meanwhile: the process is alive.
func (g *node) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if err := g.ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, err.Error())
		return
	}
	_, _ = io.WriteString(w, "ready")
}

// ready is /readyz's check: nil, or why the node is not ready.
func (g *node) ready(ctx context.Context) error {
	if g.stopping.Load() {
		return errors.New("shutting down")
	}
	if g.health != nil {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := g.health.Ready(ctx); err != nil {
			return fmt.Errorf("broker not ready: %w", err)
		}
	}
	return nil
}

// metricsHandler serves the node's counters in Prometheus' format; ah is the backend API's
// handler, nil when the API is off.
func (g *node) metricsHandler(ah http.Handler) http.Handler {
	src := metrics.Sources{Server: g.ws.Metrics, Hub: g.hub.Metrics, Gateway: g.gw.Metrics,
		Ready: func() bool { return g.ready(context.Background()) == nil }}
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
