package proxy

import (
	"sync/atomic"
	"time"
)

// Hooks names the calls Metrics counts, in the order of Metrics' entries.
var Hooks = [...]string{"connect", "refresh", "subscribe", "publish", "rpc"}

// Metrics counts a Proxy's calls, one entry per name of Hooks.
type Metrics [len(Hooks)]HookMetrics

// HookMetrics counts one kind of call. A call is counted once, retries included; a call to an
// endpoint that is not configured is not counted.
type HookMetrics struct {
	Calls    uint64  // calls made
	Failures uint64  // calls that got no usable answer: network error, timeout, 5xx, an answer that does not decode
	Refusals uint64  // calls the backend refused in its own words: an error or disconnect in its answer, 401, 403
	Seconds  float64 // the calls' total duration, retries and backoff included
}

type hookCounters struct {
	calls, failures, refusals, nanos atomic.Uint64
}

// Metrics returns a snapshot of the proxy's counters.
func (p *Proxy) Metrics() Metrics {
	var m Metrics
	for i := range m {
		c := &p.counters[i]
		m[i] = HookMetrics{Calls: c.calls.Load(), Failures: c.failures.Load(), Refusals: c.refusals.Load(),
			Seconds: float64(c.nanos.Load()) / 1e9}
	}
	return m
}

// count records a call of kind k that began at start and ended with err (refused: answered 200
// with a refusal).
func (p *Proxy) count(k callKind, start time.Time, err error, refused bool) {
	c := &p.counters[k]
	c.calls.Add(1)
	c.nanos.Add(uint64(max(time.Since(start), 0)))
	switch {
	case refused:
		c.refusals.Add(1)
	case err != nil:
		c.failures.Add(1)
	}
}
