package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The server's side of a run: what the target spent, read from its Prometheus metrics (the text
// exposition format) before the run, every second during it, and after it. A target without
// metrics is reported as such, never an error: the load result stands on its own.

// Bounds on reading a target's metrics.
const (
	// MaxMetricsBytes bounds one response; a larger one makes the target "not available".
	MaxMetricsBytes = 8 << 20
	// metricsTimeout bounds one scrape, connection and body included.
	metricsTimeout = 5 * time.Second
	// DefaultMetricsInterval is the time between two scrapes during a run.
	DefaultMetricsInterval = time.Second
	// settleTimeout bounds the wait, after the run, for the server to close the run's
	// connections (wsgate_connections back to its value before); settlePoll is its pace.
	settleTimeout = 2 * time.Second
	settlePoll    = 100 * time.Millisecond
)

// The metrics read (names fixed by docs/METRICS.md). Each is summed over its label sets.
const (
	metricCPU        = "process_cpu_seconds_total"
	metricRSS        = "process_resident_memory_bytes"
	metricGoroutines = "go_goroutines"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricConns      = "wsgate_connections"
	metricDropped    = "wsgate_send_queue_dropped_total"
	metricSlow       = "wsgate_slow_consumer_closes_total"
)

var wantedMetrics = []string{metricCPU, metricRSS, metricGoroutines, metricHeapInuse, metricConns, metricDropped, metricSlow}

// gaugeMetrics are the metrics followed through the run (before, peak, after).
var gaugeMetrics = []string{metricRSS, metricGoroutines, metricHeapInuse, metricConns}

// MetricsURL is the default metrics address of a ws:// or wss:// target: http(s)://host:port/metrics.
func MetricsURL(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("%q is not a ws:// or wss:// URL", wsURL)
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/metrics"}).String(), nil
}

// CheckMetricsURL accepts http:// and https:// URLs, on a loopback host unless remote is allowed.
func CheckMetricsURL(raw string, remote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad -metrics-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-metrics-url must be an http:// or https:// URL with a host, got %q", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); !remote && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-metrics-url host %q is not a loopback address; pass -allow-remote to read another machine", host)
	}
	return nil
}

// MetricsTarget is one node to watch: the URL of its metrics and the load's URLs it serves.
type MetricsTarget struct {
	MetricsURL string
	Targets    []string
}

// ServerWatch reads the metrics of a run's targets: once when it starts, every interval while the
// run goes on (one goroutine per target that answered, each owned by the watch and stopped by
// Stop), and once more at Stop. It keeps no time line: the first and last samples and the peaks,
// so its memory does not grow with the run.
type ServerWatch struct {
	nodes     []*nodeWatch
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	transport *http.Transport
	settleFor time.Duration // settleTimeout; shorter in tests
}

// nodeWatch is one target's figures. The sampling goroutine writes them; Stop reads them after
// it has ended.
type nodeWatch struct {
	target      MetricsTarget
	client      *http.Client
	unavailable string // why there are no figures; "" once the first scrape succeeded
	first, last sample
	peak        map[string]float64
	samples     int
	failed      int   // scrapes during the run that failed
	finalErr    error // the scrape at Stop, if it failed
}

// sample is one scrape: when it answered, and each wanted metric it holds.
type sample struct {
	at time.Time
	v  map[string]float64
}

// WatchServers scrapes every target once (concurrently, each within a bound) and starts sampling
// those that answered every interval (DefaultMetricsInterval if 0) until Stop. Targets sharing a
// metrics URL should be given once.
func WatchServers(ctx context.Context, targets []MetricsTarget, interval time.Duration, tlsConfig *tls.Config) *ServerWatch {
	if interval <= 0 {
		interval = DefaultMetricsInterval
	}
	tr := &http.Transport{
		Proxy:                  nil, // the target is measured directly, never through a proxy
		DialContext:            (&net.Dialer{Timeout: metricsTimeout}).DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    metricsTimeout,
		ResponseHeaderTimeout:  metricsTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    1,
		IdleConnTimeout:        2 * interval,
	}
	w := &ServerWatch{transport: tr, settleFor: settleTimeout}
	var first sync.WaitGroup
	for _, t := range targets {
		// No redirect is followed: it could lead off the loopback address that was checked.
		client := &http.Client{Transport: tr, Timeout: metricsTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		n := &nodeWatch{target: t, client: client, peak: map[string]float64{}}
		w.nodes = append(w.nodes, n)
		first.Go(func() { // owner: WatchServers; ends within metricsTimeout
			s, err := n.scrape(ctx)
			if err != nil {
				n.unavailable = err.Error()
				return
			}
			n.note(s)
		})
	}
	first.Wait()
	sctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	for _, n := range w.nodes {
		if n.unavailable != "" {
			continue
		}
		w.wg.Go(func() { // owner: the ServerWatch; ends at Stop (or ctx), within one scrape's bound
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-tick.C:
				}
				if s, err := n.scrape(sctx); err == nil {
					n.note(s)
				} else if sctx.Err() == nil {
					n.failed++
				}
			}
		})
	}
	return w
}

// Stop ends the sampling, scrapes every target that answered once more, and reports.
func (w *ServerWatch) Stop(ctx context.Context) *ServerReport {
	w.cancel()
	w.wg.Wait()
	var last sync.WaitGroup
	for _, n := range w.nodes {
		if n.unavailable != "" {
			continue
		}
		last.Go(func() { // owner: Stop; ends within settleTimeout plus one scrape's bound
			n.finalErr = n.settle(ctx, w.settleFor)
		})
	}
	last.Wait()
	w.transport.CloseIdleConnections()
	rep := &ServerReport{}
	for _, n := range w.nodes {
		rep.Nodes = append(rep.Nodes, n.report())
	}
	rep.Sum = sumNodes(rep.Nodes)
	return rep
}

// settle makes the last scrape: again every settlePoll while the server still counts more
// connections than before the run (it is closing the run's), for settleTimeout at most, so that
// "after" is after the run's connections are gone. Each of these scrapes is a sample.
func (n *nodeWatch) settle(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		s, err := n.scrape(ctx)
		if err != nil {
			return err
		}
		n.note(s)
		before, ok := n.first.v[metricConns]
		if !ok || s.v[metricConns] <= before || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(settlePoll):
		}
	}
}

// note records s as the last sample (the first too, if none yet) and raises the peaks.
func (n *nodeWatch) note(s sample) {
	if n.samples == 0 {
		n.first = s
	}
	n.last = s
	n.samples++
	for _, m := range gaugeMetrics {
		if v, ok := s.v[m]; ok {
			n.peak[m] = max(n.peak[m], v)
		}
	}
}

// errTooLarge is a response over MaxMetricsBytes.
var errTooLarge = fmt.Errorf("response larger than %d MiB", MaxMetricsBytes>>20)

// scrape reads the target's metrics once, within metricsTimeout and MaxMetricsBytes.
func (n *nodeWatch) scrape(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.target.MetricsURL, nil)
	if err != nil {
		return sample{}, err
	}
	// The text format only: a client_golang handler would otherwise pick OpenMetrics or protobuf.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := n.client.Do(req)
	if err != nil {
		return sample{}, scrapeError(err)
	}
	defer resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return sample{}, fmt.Errorf("HTTP %s", resp.Status)
	}
	body := &limitedReader{r: resp.Body, left: MaxMetricsBytes}
	v, err := parseMetrics(body)
	if body.over {
		return sample{}, errTooLarge
	}
	if err != nil {
		return sample{}, fmt.Errorf("not the Prometheus text format: %w", err)
	}
	if len(v) == 0 {
		return sample{}, fmt.Errorf("none of %s in its %d bytes", strings.Join(wantedMetrics, ", "), body.read)
	}
	return sample{at: at, v: v}, nil
}

// scrapeError shortens the usual reasons a target does not answer.
func scrapeError(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %v", metricsTimeout)
	}
	return err
}

// parseMetrics reads the text exposition format and returns the wanted metrics, each summed over
// its label sets (counters, gauges and untyped alike).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	v := map[string]float64{}
	for _, name := range wantedMetrics {
		f, ok := fams[name]
		if !ok {
			continue
		}
		var sum float64
		var any bool
		for _, m := range f.GetMetric() {
			if x, ok := scalar(f.GetType(), m); ok {
				sum += x
				any = true
			}
		}
		if any {
			v[name] = sum
		}
	}
	return v, nil
}

func scalar(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), m.Counter != nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), m.Gauge != nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), m.Untyped != nil
	}
	return 0, false
}

// limitedReader reads at most left bytes and records whether there was more.
type limitedReader struct {
	r    io.Reader
	left int64
	read int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	return n, err
}

// MetricsTargets pairs each of the load's URLs with its metrics URL (given, one per URL, or else
// derived by MetricsURL), and merges the URLs that share one: a server is read once.
func MetricsTargets(urls, metricsURLs []string) ([]MetricsTarget, error) {
	if len(metricsURLs) > 0 && len(metricsURLs) != len(urls) {
		return nil, fmt.Errorf("-metrics-url lists %d URLs for %d targets: give one per -url", len(metricsURLs), len(urls))
	}
	var out []MetricsTarget
	for i, u := range urls {
		var m string
		if len(metricsURLs) > 0 {
			m = metricsURLs[i]
		} else {
			var err error
			if m, err = MetricsURL(u); err != nil {
				return nil, err
			}
		}
		if j := slices.IndexFunc(out, func(t MetricsTarget) bool { return t.MetricsURL == m }); j >= 0 {
			out[j].Targets = append(out[j].Targets, u)
			continue
		}
		out = append(out, MetricsTarget{MetricsURL: m, Targets: []string{u}})
	}
	return out, nil
}
