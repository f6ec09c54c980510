package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one point of a run's time line: what happened during the interval ending at T.
type Sample struct {
	T      float64 `json:"t"`      // seconds since the run started
	Phase  string  `json:"phase"`  // dialing, running, holding, draining
	Rate   float64 `json:"rate"`   // units (messages, handshakes, deliveries) per second
	Conns  int64   `json:"conns"`  // connections open at T
	P50    float64 `json:"p50_us"` // latency over the interval; 0 without samples
	P99    float64 `json:"p99_us"`
	Errors uint64  `json:"errors"` // errors so far
}

// Snapshot is what a progress report shows: the run so far.
type Snapshot struct {
	Mode     Mode
	Phase    string
	Elapsed  time.Duration
	Duration time.Duration // of the measured phase
	Conns    int64         // open
	Target   int           // connections wanted
	Count    uint64        // units so far
	Rate     float64       // units per second over the last interval
	Unit     string        // "msgs", "handshakes", "deliveries", "conns"
	P50, P99 float64       // µs, over the whole run so far
	Errors   uint64
}

// meter counts a run's work, keeps its time line and reports progress. Workers touch only its
// atomics and its Recorder; one goroutine, started by start, samples them.
type meter struct {
	cfg    *Config
	unit   string
	target int
	rec    *Recorder
	count  atomic.Uint64
	conns  atomic.Int64
	errs   atomic.Uint64
	phase  atomic.Value // string
	begun  time.Time

	mu     sync.Mutex // guards series
	series []Sample

	stop chan struct{}
	done chan struct{}
}

func newMeter(c *Config, unit string, target int) *meter {
	m := &meter{cfg: c, unit: unit, target: target, rec: NewRecorder(), begun: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	m.phase.Store("dialing")
	return m
}

func (m *meter) setPhase(p string) { m.phase.Store(p) }

// start begins sampling every Interval; finish stops it and returns the time line.
func (m *meter) start() {
	go func() { // owner: the mode that made m; ends when finish closes m.stop
		defer close(m.done)
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		last, lastAt := uint64(0), m.begun
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				last, lastAt = m.sample(now, last, lastAt), now
			}
		}
	}()
}

func (m *meter) sample(now time.Time, last uint64, lastAt time.Time) uint64 {
	n := m.count.Load()
	iv := summarize(m.rec.TakeInterval())
	s := Sample{T: now.Sub(m.begun).Seconds(), Phase: m.phase.Load().(string),
		Rate: float64(n-last) / now.Sub(lastAt).Seconds(), Conns: m.conns.Load(),
		P50: iv.P50, P99: iv.P99, Errors: m.errs.Load()}
	m.mu.Lock()
	m.series = append(m.series, s)
	m.mu.Unlock()
	if m.cfg.Progress != nil {
		tot := summarize(m.rec.Total())
		m.cfg.Progress(Snapshot{Mode: m.cfg.Mode, Phase: s.Phase, Elapsed: now.Sub(m.begun),
			Duration: m.cfg.Duration, Conns: s.Conns, Target: m.target, Count: n, Rate: s.Rate,
			Unit: m.unit, P50: tot.P50, P99: tot.P99, Errors: s.Errors})
	}
	return n
}

func (m *meter) finish() []Sample {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.series
}
