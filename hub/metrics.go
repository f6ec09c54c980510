package hub

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Metrics is a snapshot of a Hub's counters, for an exporter to read at scrape time (see
// docs/METRICS.md). Counting costs an atomic add per event; nothing grows per channel or per
// connection. Channels and Subscriptions are gauges; the rest only grow.
type Metrics struct {
	Channels      int   // channels with at least one local subscriber (or being subscribed)
	Subscriptions int64 // local subscriptions, across all channels

	Publications       uint64 // publications this node handed to the broker and the broker accepted (clients, Hub.Publish, PublishOnce)
	PublicationsFailed uint64 // publications the broker refused or failed (unavailable, full, timeout)
	Deliveries         uint64 // publications queued to a local subscriber's connection (one per subscriber)
	DeliveriesDropped  uint64 // deliveries a subscriber's full send queue refused (the client gets a gap)

	Recovered    uint64 // subscribes asking to recover that got every missed publication
	NotRecovered uint64 // subscribes asking to recover that could not (history gone or too long)

	// BrokerPublish and BrokerHistory are the latencies of the broker's Publish (PublishOnce
	// included) and History calls made by this node, failed calls included.
	BrokerPublish, BrokerHistory Histogram
}

// HistogramBounds are the upper bounds, in seconds, of Histogram's buckets: from 100 µs (an
// in-memory broker) to 2.5 s (a JetStream cluster losing its leader).
var HistogramBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5}

// Histogram is a latency distribution in fixed buckets: Counts[i] counts the observations of at
// most HistogramBounds[i] seconds and more than the bound before (not cumulative); the last entry
// counts those above every bound. Sum is in seconds.
type Histogram struct {
	Counts [len(HistogramBounds) + 1]uint64
	Count  uint64
	Sum    float64
}

// latency is a Histogram of atomics: an observation is two atomic adds and a search of 14 bounds.
type latency struct {
	counts [len(HistogramBounds) + 1]atomic.Uint64
	sumNs  atomic.Uint64
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(HistogramBounds) && s > HistogramBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sumNs.Add(uint64(max(d, 0)))
}

func (l *latency) snapshot() Histogram {
	var h Histogram
	for i := range l.counts {
		h.Counts[i] = l.counts[i].Load()
		h.Count += h.Counts[i]
	}
	h.Sum = float64(l.sumNs.Load()) / 1e9
	return h
}

type hubMetrics struct {
	subscriptions atomic.Int64
	published     atomic.Uint64
	publishFailed atomic.Uint64
	deliveries    atomic.Uint64
	deliveryDrops atomic.Uint64
	recovered     atomic.Uint64
	notRecovered  atomic.Uint64
	publish       latency
	history       latency
}

// Metrics returns a snapshot of the hub's counters. It takes the hub's lock briefly to count
// channels: call it at scrape time, not per message.
func (h *Hub) Metrics() Metrics {
	h.mu.RLock()
	n := len(h.channels)
	h.mu.RUnlock()
	m := &h.metrics
	return Metrics{Channels: n, Subscriptions: m.subscriptions.Load(),
		Publications: m.published.Load(), PublicationsFailed: m.publishFailed.Load(),
		Deliveries: m.deliveries.Load(), DeliveriesDropped: m.deliveryDrops.Load(),
		Recovered: m.recovered.Load(), NotRecovered: m.notRecovered.Load(),
		BrokerPublish: m.publish.snapshot(), BrokerHistory: m.history.snapshot()}
}

// publish is the broker's Publish, timed and counted.
func (h *Hub) publish(ctx context.Context, channel string, data []byte) (broker.Position, error) {
	start := time.Now()
	pos, err := h.broker.Publish(ctx, channel, data)
	h.published1(start, err)
	return pos, err
}

// published1 records one broker publish call that began at start and ended with err.
func (h *Hub) published1(start time.Time, err error) {
	h.metrics.publish.observe(time.Since(start))
	if err != nil {
		h.metrics.publishFailed.Add(1)
	} else {
		h.metrics.published.Add(1)
	}
}

// history is the broker's History, timed.
func (h *Hub) history(ctx context.Context, channel string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	start := time.Now()
	r, err := h.broker.History(ctx, channel, since, limit)
	h.metrics.history.observe(time.Since(start))
	return r, err
}
