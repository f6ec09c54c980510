// Package telemetry is the binary's OpenTelemetry tracing: it implements the tracing seams of
// the library (hub.Tracer, proxy.Tracer, events.Tracer) with go.opentelemetry.io/otel and the
// W3C Trace Context propagator, traces the backend API's requests (Handler), and exports spans
// over OTLP/HTTP. The library imports no OpenTelemetry: only this package and the binary do.
//
// # Spans
//
//	ws publish        server    a client's publish request (hub), with the backend's publish hook under it
//	publish           producer  the publication handed to the broker (a client's, or the API's)
//	deliver           consumer  its delivery to one node's subscribers, on every node, a child of
//	                            publish through the traceparent the broker carries (a NATS header)
//	API <endpoint>    server    a backend API request (POST /api/publish, ...), continuing the
//	                            caller's trace when its request carries a traceparent
//	backend <call>    client    a hook call (connect, refresh, subscribe, publish, rpc) or an
//	                            event POST (event), whose traceparent header lets the backend continue
//
// A publication from the API is thus API publish → publish → deliver on each node; from a
// client, ws publish → publish → deliver. A node delivers a traced publication with a span
// only when its own tracing is on.
//
// # Attributes are bounded
//
// No user name, no connection ID, no error message (they may hold either) is recorded; an
// error is its kind (error.type: a protocol code, or "unavailable", "full", "other"). Channel
// names may name users ("user:alice"): they are recorded (messaging.destination.name) only
// with Options.ChannelNames. The delivery span counts the node's subscribers of the channel
// (wsgate.subscribers) and those the publication was queued to (wsgate.queued).
//
// # Cost
//
// Sampling is parent-based: a span whose parent was sampled is sampled, and a root span (a
// client's publish, an API request without a traceparent, an event POST) is sampled at
// Options.SampleRatio. The broker carries the trace context of sampled publications only, so
// an unsampled publication costs the broker nothing, and no node starts a span for it.
// Spans are exported in batches from a bounded queue (the SDK's 2,048 spans): beyond it spans
// are dropped, never waited for. With tracing off (no endpoint) nothing of this package runs:
// the library's seams are nil.
//
// Measured on the project's shared 2-core machine (BenchmarkPublishTraced, a server-side
// publication delivered to one local subscriber, the subscriber's reads included): 6
// allocations and 793 bytes a publication with tracing off, as before the seams existed; 14
// and 1.4 KB on and not sampled (the publish span's sampling decision); 39 and 5.8 KB on and
// sampled (a publish and a deliver span, exported to nowhere). Time per publication: within
// this machine's noise off and unsampled, about 1.5× off when sampled.
package telemetry
