package broker

import "context"

// MaxTraceLen bounds a trace context, in bytes: a W3C traceparent is 55.
const MaxTraceLen = 256

// traceKey is the context key of ContextWithTrace.
type traceKey struct{}

// ContextWithTrace returns ctx carrying trace, the trace context of a publication about to be
// made with it: Publish and PublishOnce carry it to every node's delivery (Publication.Trace).
// It is opaque to a broker (the binary's tracing puts a W3C traceparent there); the context
// carries it rather than a parameter, so that a Broker that knows nothing of tracing needs no
// change. An empty trace, one longer than MaxTraceLen, or one with a byte outside printable
// ASCII (it travels in a header), is not carried.
func ContextWithTrace(ctx context.Context, trace string) context.Context {
	return context.WithValue(ctx, traceKey{}, trace)
}

// TraceFromContext returns the trace context ContextWithTrace put in ctx, or "" when it holds
// none that a broker may carry. It allocates nothing.
func TraceFromContext(ctx context.Context) string {
	t, _ := ctx.Value(traceKey{}).(string)
	if len(t) > MaxTraceLen {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return ""
		}
	}
	return t
}
