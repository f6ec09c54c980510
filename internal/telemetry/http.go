package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// StartCall implements proxy.Tracer and events.Tracer: a call to the backend, a client span
// whose traceparent goes in header.
func (t *Tracing) StartCall(ctx context.Context, call string, header http.Header) func(error) {
	ctx, span := t.tr.Start(ctx, "backend "+call, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("wsgate.backend.call", call)))
	t.prop.Inject(ctx, propagation.HeaderCarrier(header))
	return func(err error) { end(span, err) }
}

// Handler traces the requests of the backend API mounted at base (its endpoints: endpoints,
// api.Endpoints()) as server spans, continuing the caller's trace when its request carries a
// traceparent. A path that is no endpoint is named "other": span names stay a bounded set
// whatever a caller sends.
func (t *Tracing) Handler(h http.Handler, base string, endpoints []string) http.Handler {
	known := map[string]string{}
	for _, e := range endpoints {
		known[base+e] = "API " + strings.TrimPrefix(e, "/")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := known[r.URL.Path]
		if !ok {
			name = "API other"
		}
		method := r.Method
		if method != http.MethodPost && method != http.MethodGet {
			method = "_OTHER"
		}
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", method)))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetAttributes(attribute.String("error.type", fmt.Sprint(sw.status)))
			span.SetStatus(codes.Error, "")
		}
		span.End()
	})
}

// statusWriter keeps the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer's own methods.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
