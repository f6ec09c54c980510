package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/internal/telemetry"
)

// otelOptions turn on OpenTelemetry traces (internal/telemetry): off without an endpoint.
type otelOptions struct {
	endpoint     string  // OTLP/HTTP URL; "" is off
	sampleRatio  float64 // of root spans
	channelNames bool    // record channel names in spans
}

const defaultOtelSampleRatio = 1

// otelFlushTimeout bounds the export of the last spans at shutdown (within -shutdown-timeout):
// a collector that is down must not hold a stopping node.
const otelFlushTimeout = 2 * time.Second

// addOtelFlags adds the tracing flags to fs. The switch is -otel-endpoint alone, not the
// standard OTEL_EXPORTER_OTLP_ENDPOINT: a platform may set that variable for every process of
// a host or pod, and wsgate should not start exporting traces unasked; -h and "config check"
// show the switch like every other setting. The exporter's other settings come from the
// standard OTEL_EXPORTER_OTLP_* variables (headers, certificate, compression, timeout), and
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service.
func addOtelFlags(fs *flag.FlagSet, o *options) {
	t := &o.otel
	fs.Var(newValue(&t.endpoint, parseOtelEndpoint, identity), "otel-endpoint", "OpenTelemetry: OTLP/HTTP `URL` to send traces to (http://collector:4318; /v1/traces is added when the URL has no path); the OTEL_EXPORTER_OTLP_* variables set the rest (headers, certificate, compression). Empty: no tracing, at no cost")
	fs.Var(newValue(&t.sampleRatio, parseRatio, formatRate), "otel-sample-ratio", "OpenTelemetry: share of traces started here that are sampled, 0 to 1 (a client's publish, an API request without a traceparent, an event POST); a span whose parent in this process was sampled is sampled; a remote parent's sampled flag is ignored")
	fs.BoolVar(&t.channelNames, "otel-channel-names", t.channelNames, "OpenTelemetry: record channel names in spans (they may name users: off by default)")
}

func parseOtelEndpoint(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return s, telemetry.CheckEndpoint(s)
}

func parseRatio(s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
		return 0, errors.New("want a number from 0 to 1")
	}
	return r, nil
}

// newTracing starts the node's tracing; nil when -otel-endpoint is not set.
func newTracing(ctx context.Context, o *otelOptions, node string, log *slog.Logger) (*telemetry.Tracing, error) {
	return telemetry.New(ctx, telemetry.Options{Endpoint: o.endpoint, SampleRatio: o.sampleRatio,
		ChannelNames: o.channelNames, Node: node, Logger: log})
}

// traceAPI makes the backend API's requests server spans when tracing is on (the admin page's
// calls too: they go through the same handler).
func traceAPI(tel *telemetry.Tracing, h http.Handler, cfg *gateway.Config) http.Handler {
	if tel == nil {
		return h
	}
	return tel.Handler(h, cmp.Or(cfg.API.Path, api.DefaultBasePath), api.Endpoints())
}
