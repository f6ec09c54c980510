package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// Options configure Tracing.
type Options struct {
	// Endpoint is the OTLP/HTTP URL spans are sent to (http://collector:4318; the path
	// /v1/traces is added when the URL has none). The exporter's other settings come from the
	// standard OTEL_EXPORTER_OTLP_* variables (headers, certificate, compression, timeout).
	Endpoint string
	// SampleRatio is the share of root spans sampled, 0 to 1; a span whose parent was
	// sampled is sampled.
	SampleRatio float64
	// ChannelNames records channel names in spans. Default false: they may name users.
	ChannelNames bool
	// Node names this node (service.instance.id).
	Node string
	// Exporter, when set, gets every span as it ends instead of Endpoint (tests:
	// tracetest.NewInMemoryExporter).
	Exporter sdktrace.SpanExporter
	// Logger gets OpenTelemetry's errors (a collector that cannot be reached: one warning per
	// batch that could not be sent). Default slog.Default().
	Logger *slog.Logger
}

// Tracing traces what the library's seams report; see the package doc. Its methods are safe
// for concurrent use.
type Tracing struct {
	tp       *sdktrace.TracerProvider
	tr       trace.Tracer
	prop     propagation.TraceContext
	channels bool
}

// instrumentation names this package's spans.
const instrumentation = "github.com/wsgate/wsgate"

// CheckEndpoint reports what is wrong with an OTLP/HTTP endpoint URL.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL, like http://collector:4318")
	}
	return nil
}

// endpointURL is s with the default traces path when it has none.
func endpointURL(s string) string {
	u, _ := url.Parse(s)
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String()
}

// New starts tracing; nil, nil when o has neither an Endpoint nor an Exporter (tracing off).
func New(ctx context.Context, o Options) (*Tracing, error) {
	if o.Endpoint == "" && o.Exporter == nil {
		return nil, nil
	}
	if o.SampleRatio < 0 || o.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v is not between 0 and 1", o.SampleRatio)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "wsgate"), attribute.String("service.instance.id", o.Node)))
	if err != nil {
		return nil, err
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil { // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		res, _ = resource.Merge(res, env)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// OpenTelemetry reports export failures to one handler per process; the last Tracing made
	// gets them (a process runs one).
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("telemetry: spans not exported", "err", err) }))
	// A remote parent's sampled flag is not trusted: the API's traceparent is read before its key
	// is checked, so an anonymous caller sending flags 01 would have every refused request
	// exported, whatever the ratio. A remote parent still gives its trace id, so a caller's trace
	// continues; whether it is recorded is the ratio's choice (of that trace id, so consistent
	// across services that use the same ratio). A local parent's decision is kept.
	ratio := sdktrace.TraceIDRatioBased(o.SampleRatio)
	sampler := sdktrace.ParentBased(ratio, sdktrace.WithRemoteParentSampled(ratio), sdktrace.WithRemoteParentNotSampled(ratio))
	var export sdktrace.TracerProviderOption
	if o.Exporter != nil {
		export = sdktrace.WithSyncer(o.Exporter)
	} else {
		if err := CheckEndpoint(o.Endpoint); err != nil {
			return nil, fmt.Errorf("telemetry: endpoint %q: %w", o.Endpoint, err)
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpointURL(o.Endpoint)))
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		export = sdktrace.WithBatcher(exp)
	}
	tp := sdktrace.NewTracerProvider(export, sdktrace.WithSampler(sampler), sdktrace.WithResource(res))
	return &Tracing{tp: tp, tr: tp.Tracer(instrumentation), channels: o.ChannelNames}, nil
}

// Shutdown exports the spans still queued, within ctx, and stops.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.tp.Shutdown(ctx) }

// channel is the attribute naming channel, when allowed.
func (t *Tracing) channel(attrs []attribute.KeyValue, channel string) []attribute.KeyValue {
	if t.channels && channel != "" {
		attrs = append(attrs, attribute.String("messaging.destination.name", channel))
	}
	return attrs
}

// end ends span with err's kind, never its text (it may name a user or a channel).
func end(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// errorType is a bounded name of err's kind.
func errorType(err error) string {
	var perr *protocol.Error
	switch {
	case errors.As(err, &perr):
		return fmt.Sprint(int(perr.Code))
	case errors.Is(err, broker.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, broker.ErrFull):
		return "full"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// StartRequest implements hub.Tracer: a client's request, a server span.
func (t *Tracing) StartRequest(ctx context.Context, op, channel string) (context.Context, func(error)) {
	ctx, span := t.tr.Start(ctx, "ws "+op, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(t.channel([]attribute.KeyValue{
			attribute.String("rpc.system", protocol.Subprotocol), attribute.String("rpc.method", op)}, channel)...))
	return ctx, func(err error) { end(span, err) }
}

// StartPublish implements hub.Tracer: the broker publish, a producer span whose traceparent
// the broker carries when it is sampled.
func (t *Tracing) StartPublish(ctx context.Context, channel string) (context.Context, string, func(error)) {
	ctx, span := t.tr.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(t.channel([]attribute.KeyValue{
			attribute.String("messaging.system", "wsgate"), attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "publish")}, channel)...))
	tp := ""
	if span.SpanContext().IsSampled() {
		c := propagation.MapCarrier{}
		t.prop.Inject(ctx, c)
		tp = c["traceparent"]
	}
	return ctx, tp, func(err error) { end(span, err) }
}

// StartDelivery implements hub.Tracer: a delivery to this node's subscribers, a consumer span,
// child of the publish span whose traceparent the publication carried.
func (t *Tracing) StartDelivery(channel, tp string, offset uint64) func(subscribers, queued int) {
	ctx := t.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	_, span := t.tr.Start(ctx, "deliver", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(t.channel([]attribute.KeyValue{
			attribute.String("messaging.system", "wsgate"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.operation.name", "deliver"), attribute.Int64("wsgate.offset", int64(offset))}, channel)...))
	return func(subscribers, queued int) {
		span.SetAttributes(attribute.Int("wsgate.subscribers", subscribers), attribute.Int("wsgate.queued", queued))
		span.End()
	}
}
