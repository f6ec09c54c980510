// Package metrics exports wsgate's counters to Prometheus for the binary. The root package, the
// hub and the gateway count with atomics and know nothing of Prometheus; the Collector here reads
// their snapshots when /metrics is scraped, so the hot path never touches client_golang. Labels
// are bounded sets (close codes, HTTP statuses, frame types, endpoints, hooks): never a channel,
// a user or a connection. docs/METRICS.md lists every metric; a test holds the two together.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
)

// Sources are the snapshots a Collector reads; a nil one is left out.
type Sources struct {
	Server  func() wsgate.Metrics // it walks every connection: the binary's is a Shared's Get (ServerMaxAge)
	Hub     func() hub.Metrics
	Gateway func() gateway.Metrics
	API     func() (api.Metrics, bool) // false: no API on this node
	Ready   func() bool                // what /readyz answers: true for 200 (the binary's is cached ~1 s, shared with /readyz)
}

// MaxScrapesInFlight and ScrapeTimeout bound NewHandler's scrapes.
const (
	MaxScrapesInFlight = 4
	ScrapeTimeout      = 10 * time.Second
)

// NewHandler returns the /metrics handler of a registry holding src's Collector and the
// standard Go runtime and process collectors.
func NewHandler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		NewCollector(src))
	// /metrics may be public (on -addr): a bounded number of scrapes gather at once (one more is
	// answered 503 at once), and one that takes too long is answered 503 rather than held.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		MaxRequestsInFlight: MaxScrapesInFlight, Timeout: ScrapeTimeout})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dReady        = desc("wsgate_ready", "1 while /readyz answers 200, 0 while it answers 503 (shutting down, or the broker not ready).")
	dConns        = desc("wsgate_connections", "WebSocket connections open now.")
	dOpened       = desc("wsgate_connections_opened_total", "WebSocket upgrades completed.")
	dParked       = desc("wsgate_connections_parked", "WebSocket connections parked now: idle, waiting on epoll with no reader goroutine and no read buffer.")
	dWakeups      = desc("wsgate_connection_wakeups_total", "Times a parked connection got a reader goroutine again (bytes arrived, it closed, or its pong was overdue).")
	dReaderQueue  = desc("wsgate_connections_waiting_for_reader", "Woken connections waiting now for one of the -max-readers reader goroutines.")
	dReaderWaits  = desc("wsgate_reader_waits_total", "Wake-ups that had to wait for a reader goroutine, all -max-readers being busy.")
	dClosed       = desc("wsgate_connections_closed_total", "WebSocket connections ended, by close code (the known codes, else \"other\").", "code")
	dHandshakes   = desc("wsgate_handshakes_total", "Opening handshakes answered, by HTTP status (101 upgraded).", "status")
	dShed         = desc("wsgate_handshakes_shed_total", "Opening handshakes (and browsers' probes) turned away 503 with Retry-After above -max-handshake-rate; also in wsgate_handshakes_total{status=\"503\"}.")
	dMsgsIn       = desc("wsgate_messages_received_total", "Data messages received, by type.", "type")
	dMsgsOut      = desc("wsgate_messages_sent_total", "Data messages the socket took in full, by type.", "type")
	dBytesIn      = desc("wsgate_bytes_received_total", "Bytes read from WebSocket connections after the handshake, by frame type (text, binary, control; headers included).", "type")
	dBytesOut     = desc("wsgate_bytes_sent_total", "Bytes written to WebSocket connections after the handshake, by frame type (text, binary, control; headers included).", "type")
	dDropped      = desc("wsgate_send_queue_dropped_total", "Messages discarded by the drop-newest or drop-oldest slow-consumer policy.")
	dSlow         = desc("wsgate_slow_consumer_closes_total", "Connections closed 1013 slow consumer: their send queue overflowed.")
	dPongTimeout  = desc("wsgate_pong_timeouts_total", "Connections ended because the peer stopped answering pings.")
	dWriteTimeout = desc("wsgate_write_timeouts_total", "Connections ended because a write passed the write timeout.")
	dPanics       = desc("wsgate_handler_panics_total", "Handler panics recovered (each closes its connection 1011).")

	dChannels     = desc("wsgate_hub_channels", "Channels with a subscriber on this node.")
	dSubs         = desc("wsgate_hub_subscriptions", "Subscriptions on this node.")
	dPubs         = desc("wsgate_hub_publications_total", "Publications this node handed to the broker and the broker accepted.")
	dPubsFailed   = desc("wsgate_hub_publications_failed_total", "Publications the broker refused or failed.")
	dDeliveries   = desc("wsgate_hub_deliveries_total", "Publications queued to a subscriber's connection on this node (one per subscriber).")
	dDelivDropped = desc("wsgate_hub_deliveries_dropped_total", "Deliveries a full send queue refused (the subscriber is told of a gap).")
	dRecoveries   = desc("wsgate_hub_recoveries_total", "Subscribes that asked to recover missed publications, by outcome.", "outcome")
	dBroker       = desc("wsgate_hub_broker_seconds", "Latency of the broker's calls made by this node, by operation.", "op")

	dHook         = desc("wsgate_hook_duration_seconds", "Calls to the backend's hooks, retries included: count and total time, by hook.", "hook")
	dHookFailures = desc("wsgate_hook_failures_total", "Hook calls that got no usable answer (network error, timeout, 5xx, bad answer).", "hook")
	dHookRefusals = desc("wsgate_hook_refusals_total", "Hook calls the backend refused (its own error or disconnect, 401, 403).", "hook")
	dAPI          = desc("wsgate_api_requests_total", "Backend HTTP API requests answered, by endpoint and HTTP status.", "endpoint", "status")
	dAPITime      = desc("wsgate_api_request_duration_seconds", "Backend HTTP API requests answered, whatever the status: count and total time from the handler's start to its answer, by endpoint.", "endpoint")
	dEvDelivered  = desc("wsgate_events_delivered_total", "Connect and disconnect events the backend acknowledged.")
	dEvFailed     = desc("wsgate_events_failed_total", "Event delivery attempts the backend did not acknowledge.")
	dEvDropped    = desc("wsgate_events_dropped_total", "Events dropped before the outbox (queue full).")
	dEvPending    = desc("wsgate_events_pending", "Events not yet in the outbox.")
)

// Collector reads Sources' snapshots at scrape time.
type Collector struct{ src Sources }

// NewCollector returns a Collector of src.
func NewCollector(src Sources) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dReady, dConns, dOpened, dParked, dWakeups, dReaderQueue, dReaderWaits, dClosed, dHandshakes, dShed, dMsgsIn, dMsgsOut, dBytesIn,
		dBytesOut, dDropped, dSlow, dPongTimeout, dWriteTimeout, dPanics, dChannels, dSubs, dPubs, dPubsFailed,
		dDeliveries, dDelivDropped, dRecoveries, dBroker, dHook, dHookFailures, dHookRefusals, dAPI, dAPITime,
		dEvDelivered, dEvFailed, dEvDropped, dEvPending} {
		ch <- d
	}
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Ready != nil {
		v := 0.0
		if c.src.Ready() {
			v = 1
		}
		ch <- gauge(dReady, v)
	}
	if c.src.Server != nil {
		m := c.src.Server()
		ch <- gauge(dConns, float64(m.Connections))
		ch <- counter(dOpened, m.Opened)
		ch <- gauge(dParked, float64(m.Parked))
		ch <- counter(dWakeups, m.Wakeups)
		ch <- gauge(dReaderQueue, float64(m.WaitingForReader))
		ch <- counter(dReaderWaits, m.WaitedForReader)
		for i, n := range m.Closed {
			ch <- counter(dClosed, n, wsgate.MetricsCloseCodeLabel(i))
		}
		for i, n := range m.Handshakes {
			ch <- counter(dHandshakes, n, wsgate.MetricsHandshakeStatusLabel(i))
		}
		ch <- counter(dShed, m.HandshakesShed)
		ch <- counter(dMsgsIn, m.MessagesReceivedText, "text")
		ch <- counter(dMsgsIn, m.MessagesReceivedBinary, "binary")
		ch <- counter(dMsgsOut, m.MessagesSentText, "text")
		ch <- counter(dMsgsOut, m.MessagesSentBinary, "binary")
		ch <- counter(dBytesIn, m.BytesReceivedText, "text")
		ch <- counter(dBytesIn, m.BytesReceivedBinary, "binary")
		ch <- counter(dBytesIn, m.BytesReceivedControl, "control")
		ch <- counter(dBytesOut, m.BytesSentText, "text")
		ch <- counter(dBytesOut, m.BytesSentBinary, "binary")
		ch <- counter(dBytesOut, m.BytesSentControl, "control")
		ch <- counter(dDropped, m.SendQueueDropped)
		ch <- counter(dSlow, m.SlowConsumerCloses)
		ch <- counter(dPongTimeout, m.PongTimeouts)
		ch <- counter(dWriteTimeout, m.WriteTimeouts)
		ch <- counter(dPanics, m.HandlerPanics)
	}
	if c.src.Hub != nil {
		m := c.src.Hub()
		ch <- gauge(dChannels, float64(m.Channels))
		ch <- gauge(dSubs, float64(m.Subscriptions))
		ch <- counter(dPubs, m.Publications)
		ch <- counter(dPubsFailed, m.PublicationsFailed)
		ch <- counter(dDeliveries, m.Deliveries)
		ch <- counter(dDelivDropped, m.DeliveriesDropped)
		ch <- counter(dRecoveries, m.Recovered, "recovered")
		ch <- counter(dRecoveries, m.NotRecovered, "not_recovered")
		ch <- histogram(dBroker, m.BrokerPublish, "publish")
		ch <- histogram(dBroker, m.BrokerHistory, "history")
	}
	if c.src.Gateway != nil {
		m := c.src.Gateway()
		for i, h := range m.Hooks {
			ch <- prometheus.MustNewConstSummary(dHook, h.Calls, h.Seconds, nil, proxy.Hooks[i])
			ch <- counter(dHookFailures, h.Failures, proxy.Hooks[i])
			ch <- counter(dHookRefusals, h.Refusals, proxy.Hooks[i])
		}
		ch <- counter(dEvDelivered, m.Events.Delivered)
		ch <- counter(dEvFailed, m.Events.Failed)
		ch <- counter(dEvDropped, m.Events.Dropped)
		ch <- gauge(dEvPending, float64(m.Events.Pending))
	}
	if c.src.API != nil {
		if m, ok := c.src.API(); ok {
			for e, row := range m.Requests {
				for s, n := range row {
					// Every endpoint's 200 always, so that each endpoint has a series from the
					// start; the other statuses once they occur.
					if n > 0 || s == 0 {
						ch <- counter(dAPI, n, api.MetricsEndpoints[e], api.MetricsStatusLabel(s))
					}
				}
				ch <- prometheus.MustNewConstSummary(dAPITime, m.Calls(e), m.Seconds[e], nil, api.MetricsEndpoints[e])
			}
		}
	}
}

// histogram turns a hub.Histogram (per-bucket counts) into Prometheus' cumulative buckets.
func histogram(d *prometheus.Desc, h hub.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(hub.HistogramBounds))
	var cum uint64
	for i, b := range hub.HistogramBounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, labels...)
}
