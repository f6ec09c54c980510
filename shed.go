package wsgate

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Handshake shedding (Config.MaxHandshakeRate): above the rate an upgrade is answered 503 with
// Retry-After before any other work is done for it, so that a reconnect storm is spread over the
// next seconds instead of queueing in the accept backlog until everyone times out.

// maxShedWait bounds the Retry-After of a shed handshake. Past it the queue is not counted
// further: a flood of requests that never return (or an attacker's) must not push the clients
// who do return hours away. Those told to wait beyond it are spread over its second half.
const maxShedWait = 60 * time.Second

// handshakeLimiter is a token bucket of rate tokens a second holding at most rate, kept as the
// generic cell rate algorithm's theoretical arrival time: one atomic word and a compare-and-swap
// per handshake, no lock and no allocation.
//
// It also keeps the queue of the handshakes it turned away: each is given the next free slot
// after the bucket's own (one interval apart), and told Retry-After the whole seconds until it.
// So a storm of n clients at rate r hears 1, 2, … n/r seconds, r of them for each second, instead
// of all coming back at the same second and being turned away again.
type handshakeLimiter struct {
	interval  int64     // nanoseconds between tokens: 1 s / rate
	tolerance int64     // how far ahead of now tat may run and still conform: (rate-1) intervals
	base      time.Time // the zero of tat and queue, with its monotonic clock
	tat       atomic.Int64
	queue     atomic.Int64 // when the last client turned away gets its token
}

func newHandshakeLimiter(rate int) *handshakeLimiter {
	if rate <= 0 {
		return nil
	}
	iv := max(1, int64(time.Second)/int64(rate)) // beyond 1e9 a second: one a nanosecond
	return &handshakeLimiter{interval: iv, tolerance: int64(time.Second) - iv, base: time.Now()}
}

func (l *handshakeLimiter) now() int64 { return int64(time.Since(l.base)) }

// take takes a token for a handshake. It returns 0 when it has one, or else how long the client
// turned away should wait for its place in the queue.
func (l *handshakeLimiter) take() time.Duration {
	now := l.now()
	for {
		tat := l.tat.Load()
		t := max(tat, now)
		if t-now > l.tolerance {
			return l.enqueue(now, t)
		}
		if l.tat.CompareAndSwap(tat, t+l.interval) {
			return 0
		}
	}
}

// refund gives back the token of a handshake refused after it was taken by a limit that did no
// work for it (a per-address limit): the bucket's next token comes one interval sooner, but never
// sooner than now. A nil limiter (no MaxHandshakeRate) does nothing.
func (l *handshakeLimiter) refund() {
	if l == nil {
		return
	}
	now := l.now()
	for {
		tat := l.tat.Load()
		if tat <= now {
			return // the bucket is full again already
		}
		if l.tat.CompareAndSwap(tat, max(tat-l.interval, now)) {
			return
		}
	}
}

// shedding reports, without taking a token, whether a handshake now would be turned away, and if
// so how long a browser's probe should be told to wait. The server cannot tell which refused
// handshake the probe stands for (a browser hides that refusal's status, so it asks), and the
// handshake already took its place in the queue: the probe is told a place drawn uniformly from
// the queue as it stands, and takes none, so that probing browsers come back spread as their
// handshakes were.
func (l *handshakeLimiter) shedding() time.Duration {
	now := l.now()
	t := max(l.tat.Load(), now)
	if t-now <= l.tolerance {
		return 0
	}
	first := t - l.tolerance - now // until the next token
	last := min(max(l.queue.Load()-now, first), int64(maxShedWait))
	return time.Duration(first + rand.Int64N(last-first+1))
}

// enqueue gives a client turned away at now, when the bucket's next token is due at
// tat-tolerance, the next slot of the queue.
func (l *handshakeLimiter) enqueue(now, tat int64) time.Duration {
	for {
		q := l.queue.Load()
		next := max(q+l.interval, tat-l.tolerance)
		if next-now > int64(maxShedWait) {
			// The queue is longer than anyone should be told: spread the rest over the second
			// half of the bound, and do not count them (they may never come back).
			return maxShedWait/2 + rand.N(maxShedWait/2)
		}
		if l.queue.CompareAndSwap(q, next) {
			return time.Duration(next - now)
		}
	}
}

// shed answers a handshake turned away by the limiter: 503 with Retry-After, the whole seconds
// until its place in the queue (at least 1), through the reject path so that metrics count it.
func (s *Server) shed(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := max(1, int64((wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.metrics.shed.Add(1)
	s.reject(w, r, http.StatusServiceUnavailable, "too many handshakes, retry later")
}

// isProbe reports whether r is a browser client's probe: a plain GET or HEAD without Upgrade,
// sent after a WebSocket handshake failed, since a browser hides that handshake's status. It is
// answered 503 with Retry-After while the server sheds, readable by the page's script when its
// origin is allowed (CORS); otherwise it falls through to the handshake checks (400 or 405).
func isProbe(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == ""
}

// answerProbe answers a browser's probe with 503 and Retry-After while MaxHandshakeRate sheds;
// it reports whether it answered (otherwise the probe falls through to the handshake checks).
func (s *Server) answerProbe(w http.ResponseWriter, r *http.Request) bool {
	wait := s.rate.shedding()
	if wait == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); o != "" && s.cfg.originAllowed(o, r.Host, s.cfg.requestScheme(r)) {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Expose-Headers", "Retry-After")
	}
	s.shed(w, r, wait)
	return true
}
