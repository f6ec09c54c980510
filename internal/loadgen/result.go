package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Fields that do not apply to its mode are zero (and left out of
// the JSON).
type Result struct {
	Mode Mode `json:"mode"`
	// URL of the server; of the publisher's node in a fanout against a cluster.
	URL     string    `json:"url"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"` // the measured phase (sending, holding; fanout: until the last delivery)

	Conns    int     `json:"conns"` // wanted: connections, workers or subscribers
	Size     int     `json:"size,omitempty"`
	Window   int     `json:"window,omitempty"`
	Text     bool    `json:"text,omitempty"`
	Rate     float64 `json:"rate,omitempty"` // the -rate asked for
	Protocol string  `json:"protocol,omitempty"`

	// Echo: messages echoed and verified during the measured phase; connect: handshakes; fanout:
	// deliveries.
	Messages   uint64  `json:"messages"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec,omitempty"` // payload, one way, 10^6 bytes

	// Latency: echo round trip, handshake, or delivery (publisher's send to a subscriber's read).
	Latency   Latency `json:"latency"`
	P50Micros float64 `json:"p50_us"` // = Latency.P50 and P99, for scripts that read only these
	P99Micros float64 `json:"p99_us"`

	// Fairness over connections (echo) or subscribers (fanout): units each got, and Jain's index.
	PerConnMin uint64  `json:"per_conn_min"`
	PerConnMed uint64  `json:"per_conn_median"`
	PerConnMax uint64  `json:"per_conn_max"`
	Jain       float64 `json:"jain"`

	// Errors is the sum of every kind of failure below; a good run has none.
	Errors     uint64 `json:"errors"`
	DialErrors int    `json:"dial_errors"`
	IOErrors   uint64 `json:"io_errors"`  // reads or writes that failed, connections lost
	Mismatches uint64 `json:"mismatches"` // echoes that differ from the message
	FirstError string `json:"first_error,omitempty"`

	// Idle: connections open once dialling ended, how long that took, those lost while holding,
	// and the target's resident memory (bytes) before dialling and once settled.
	Opened      int     `json:"opened,omitempty"`
	RampSeconds float64 `json:"ramp_seconds,omitempty"`
	Dropped     int     `json:"dropped,omitempty"`
	PID         int     `json:"pid,omitempty"`
	RSSBefore   uint64  `json:"rss_before,omitempty"`
	RSSAfter    uint64  `json:"rss_after,omitempty"`
	RSSPerConn  float64 `json:"rss_per_conn,omitempty"`
	// Pings the server sent and the connections answered while open (WebSocket pings, and
	// Centrifugo's {} with -protocol centrifugo): the heartbeats ran.
	Pings uint64 `json:"pings,omitempty"`

	// Fanout: publications sent, refused by the server, and what subscribers missed.
	Published     uint64 `json:"published,omitempty"`
	PublishErrors uint64 `json:"publish_errors,omitempty"`
	Lost          uint64 `json:"lost"`         // accepted publications a subscriber never got
	Duplicates    uint64 `json:"duplicates"`   // publications a subscriber got twice
	OutOfOrder    uint64 `json:"out_of_order"` // publications that came after a later one
	OffsetGaps    uint64 `json:"offset_gaps"`  // positions skipped in a subscriber's stream of offsets
	// Nodes: per node of a cluster (Config.Nodes), the publisher's first; nil against one server.
	Nodes []NodeResult `json:"nodes,omitempty"`

	// Storm: what a connect storm measured (Config.Storm); nil otherwise.
	Storm *StormResult `json:"storm,omitempty"`

	// Server: what the target spent during the run, from its Prometheus metrics (WatchServers);
	// nil when not asked for.
	Server *ServerReport `json:"server,omitempty"`

	Spectrum []SpectrumPoint `json:"spectrum,omitempty"`
	Series   []Sample        `json:"series,omitempty"`
}

// fillLatency sets the latency summary and spectrum from r's recorder.
func (r *Result) fillLatency(rec *Recorder) {
	h := rec.Total()
	r.Latency = summarize(h)
	r.P50Micros, r.P99Micros = r.Latency.P50, r.Latency.P99
	r.Spectrum = spectrum(h)
}

// fillFairness sets the per-connection figures from counts (one per connection wanted; those
// that never opened count as zero: they were starved as surely as a slow one).
func (r *Result) fillFairness(counts []uint64) {
	if len(counts) == 0 {
		return
	}
	s := slices.Clone(counts)
	slices.Sort(s)
	r.PerConnMin, r.PerConnMed, r.PerConnMax = s[0], s[len(s)/2], s[len(s)-1]
	r.Jain = Jain(s)
}

// Jain is Jain's fairness index (Σx)² / (n·Σx²): 1 when everyone got the same service, 1/n when
// one got it all; 1 when nobody got anything.
func Jain(xs []uint64) float64 {
	var s, s2 float64
	for _, x := range xs {
		f := float64(x)
		s += f
		s2 += f * f
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

func (r *Result) noteError(err error) {
	if err != nil && r.FirstError == "" {
		r.FirstError = err.Error()
	}
}

// Print writes the human summary.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "%s %s, %s\n", r.Mode, r.URL, r.shape())
	switch r.Mode {
	case ModeEcho:
		fmt.Fprintf(w, "  %d msgs in %.1fs: %.0f msgs/s, %.2f MB/s each way\n", r.Messages, r.Seconds, r.MsgsPerSec, r.MBPerSec)
		r.printLatency(w, "round trip")
		r.printFairness(w, "per connection")
	case ModeConnect:
		if r.Storm != nil {
			r.Storm.Print(w)
			break
		}
		fmt.Fprintf(w, "  %d handshakes in %.1fs: %.0f handshakes/s\n", r.Messages, r.Seconds, r.MsgsPerSec)
		r.printLatency(w, "handshake")
	case ModeIdle:
		fmt.Fprintf(w, "  %d of %d open in %.1fs, held %.1fs, %d dropped meanwhile, %d pings answered\n", r.Opened, r.Conns, r.RampSeconds, r.Seconds, r.Dropped, r.Pings)
		if r.PID > 0 {
			fmt.Fprintf(w, "  pid %d VmRSS %s before, %s after: %.0f B per connection\n", r.PID, mib(r.RSSBefore), mib(r.RSSAfter), r.RSSPerConn)
		}
	case ModeFanout:
		fmt.Fprintf(w, "  %d publications (%d refused), %d deliveries in %.1fs: %.0f deliveries/s\n",
			r.Published, r.PublishErrors, r.Messages, r.Seconds, r.MsgsPerSec)
		r.printLatency(w, "delivery")
		fmt.Fprintf(w, "  lost %d, duplicates %d, out of order %d, offset gaps %d\n", r.Lost, r.Duplicates, r.OutOfOrder, r.OffsetGaps)
		r.printFairness(w, "per subscriber")
		for _, n := range r.Nodes {
			if n.Publisher && n.Subscribers == 0 {
				fmt.Fprintf(w, "  node %s: the publisher, no subscribers\n", n.URL)
				continue
			}
			fmt.Fprintf(w, "  node %s: %d subscribers, %d deliveries, p50 %s  p99 %s, lost %d\n",
				n.URL, n.Subscribers, n.Deliveries, dur(n.P50Micros), dur(n.P99Micros), n.Lost)
		}
	}
	fmt.Fprintf(w, "  errors %d (dial %d, io %d, mismatches %d)", r.Errors, r.DialErrors, r.IOErrors, r.Mismatches)
	if r.FirstError != "" {
		fmt.Fprintf(w, "; first: %s", r.FirstError)
	}
	fmt.Fprintln(w)
	r.Server.Print(w)
}

func (r *Result) shape() string {
	switch r.Mode {
	case ModeEcho:
		kind := "binary"
		if r.Text {
			kind = "text"
		}
		s := fmt.Sprintf("%d conns × %d B %s, window %d", r.Conns, r.Size, kind, r.Window)
		if r.Rate > 0 {
			s += fmt.Sprintf(", at most %g msgs/s", r.Rate)
		}
		return s
	case ModeConnect:
		if r.Storm != nil {
			return fmt.Sprintf("a storm of %d clients at once", r.Conns)
		}
		return fmt.Sprintf("%d workers", r.Conns)
	case ModeIdle:
		if r.Protocol != "" {
			return fmt.Sprintf("%d conns, %s protocol", r.Conns, r.Protocol)
		}
		return fmt.Sprintf("%d conns", r.Conns)
	}
	s := fmt.Sprintf("%d subscribers, %s protocol, %g publications/s, %d B padding", r.Conns, r.Protocol, r.Rate, r.Size)
	if len(r.Nodes) > 1 {
		s += fmt.Sprintf(", %d nodes (the publisher's first)", len(r.Nodes))
	}
	return s
}

func (r *Result) printLatency(w io.Writer, what string) {
	l := r.Latency
	fmt.Fprintf(w, "  %s latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)\n", what,
		dur(l.P50), dur(l.P90), dur(l.P99), dur(l.P999), dur(l.Max), l.Count)
}

func (r *Result) printFairness(w io.Writer, what string) {
	fmt.Fprintf(w, "  %s min/median/max %d/%d/%d, Jain %.3f\n", what, r.PerConnMin, r.PerConnMed, r.PerConnMax, r.Jain)
}

// dur formats microseconds for a person: 850µs, 12.3ms, 1.20s.
func dur(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.3g", us/1e3), ".0") + "ms"
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
