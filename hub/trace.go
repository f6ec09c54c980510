package hub

import (
	"context"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Tracer is the hub's seam to a tracing system (the binary's OpenTelemetry adapter,
// internal/telemetry): the hub imports none. It traces a publication from the request that
// made it, through the broker, to its delivery on every node: the broker carries the trace
// context StartPublish returns (broker.ContextWithTrace) to each node's delivery, whose span
// StartDelivery starts. A Tracer decides what a span records: channel names may hold user
// names, so the adapter records them only when the operator allows it.
//
// Its methods are called on the hot path, without hub locks held but StartDelivery's (a
// channel's lock): they must not block. With Options.Tracer nil the hub makes no call and
// pays nothing.
type Tracer interface {
	// StartRequest starts the span of a client's request (op: "publish"), a child of ctx's
	// span if any; the returned context carries it to the hooks the request calls (the
	// backend's). end ends it with the request's refusal, nil when it succeeded.
	StartRequest(ctx context.Context, op, channel string) (_ context.Context, end func(err error))
	// StartPublish starts the span of a publication handed to the broker (a client's, or a
	// server-side Publish or PublishOnce: the API's), a child of ctx's span. trace is its
	// context for the broker to carry ("" carries none: not sampled); end ends it with the
	// broker's error.
	StartPublish(ctx context.Context, channel string) (_ context.Context, trace string, end func(err error))
	// StartDelivery starts the span of the delivery of a publication of channel made with
	// trace (never "") to this node's subscribers; end ends it with the number of local
	// subscribers and of those it was queued to. Nil end: no span.
	StartDelivery(channel, trace string, offset uint64) (end func(subscribers, queued int))
}

// brokerPublish hands a publication to the broker (PublishOnce's when key is set), within a
// span of its own when traced.
func (h *Hub) brokerPublish(ctx context.Context, channel string, data []byte, key string) (broker.Position, error) {
	if h.opts.Tracer == nil {
		return h.toBroker(ctx, channel, data, key)
	}
	ctx, trace, end := h.opts.Tracer.StartPublish(ctx, channel)
	if trace != "" {
		ctx = broker.ContextWithTrace(ctx, trace)
	}
	pos, err := h.toBroker(ctx, channel, data, key)
	end(err)
	return pos, err
}

func (h *Hub) toBroker(ctx context.Context, channel string, data []byte, key string) (pos broker.Position, err error) {
	start := time.Now()
	defer func() { h.published1(start, err) }() // metrics.go
	if key != "" {
		return h.broker.(broker.Deduplicator).PublishOnce(ctx, channel, data, key)
	}
	return h.broker.Publish(ctx, channel, data)
}
