package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/client"
)

// A storm (Config.Storm, "wsgate bench connect -storm") is a reconnect storm: Conns clients
// released at the same instant, each dialling until it is in. A client turned away with 503 or
// 429 waits what the server's Retry-After says, plus up to a second of jitter (Retry-After counts
// whole seconds), as a well-behaved client does; one whose attempt failed otherwise (a timeout, a
// reset, a refusal without Retry-After) backs off exponentially from 100 ms to 5 s, with jitter.
// Accepted connections keep a reader (the server's pings are answered) and are held until every
// client of the run is in or has given up at RampTimeout, then for Duration, then closed.
//
// A storm of more clients than one process may hold sockets for runs in several processes fired
// at the same wall-clock time (Config.StormAt); each prints its histograms encoded, which the
// caller merges (MergeStorms).

// StormResult is what a storm measured.
type StormResult struct {
	Clients  int       `json:"clients"`
	Accepted int       `json:"accepted"`
	FiredAt  time.Time `json:"fired_at"`
	// LastAccepted is when the last client got in; Seconds from FiredAt to it, and
	// HandshakesPerSec is Accepted over Seconds.
	LastAccepted     time.Time `json:"last_accepted"`
	Seconds          float64   `json:"seconds"`
	HandshakesPerSec float64   `json:"handshakes_per_sec"`
	// Shed counts 503 answers, TooMany 429 answers; Honoured the retries made after waiting the
	// Retry-After they carried; Failed the attempts that failed otherwise (retried with backoff).
	Shed     uint64 `json:"shed"`
	TooMany  uint64 `json:"too_many"`
	Honoured uint64 `json:"retries_honoured"`
	Failed   uint64 `json:"failed_attempts"`
	// Handshake is the accepted attempt's own time (TCP connect and upgrade); Accept the time
	// from FiredAt until the client was in, waits included.
	Handshake Latency `json:"handshake"`
	Accept    Latency `json:"accept"`
	// HandshakeHist and AcceptHist are the histograms behind them, encoded (HdrHistogram's
	// compressed base64 form), so that the storms of several processes can be merged.
	HandshakeHist string `json:"handshake_hist,omitempty"`
	AcceptHist    string `json:"accept_hist,omitempty"`
}

// stormClient is what one client of a storm went through.
type stormClient struct {
	ws                  *websocket.Conn
	handshake, accepted time.Duration
	shed, tooMany       uint64
	honoured, failed    uint64
	err                 error
}

// Storm runs a storm of c.Conns clients (see above).
func Storm(ctx context.Context, c Config) (*Result, error) {
	c, err := prepare(c, ModeConnect)
	if err != nil {
		return nil, err
	}
	c.Storm = true
	m := newMeter(&c, "conns", c.Conns)
	res := &Result{Mode: ModeConnect, URL: c.URL, Started: m.begun, Conns: c.Conns}
	m.setPhase("waiting")
	m.start()
	d := newDialer(&c, c.Conns, 0, nil)
	fire := c.StormAt
	if fire.IsZero() || fire.Before(time.Now()) {
		fire = time.Now().Add(100 * time.Millisecond) // time for every goroutine to be waiting
	}
	deadline := fire.Add(c.RampTimeout)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	clients := make([]stormClient, c.Conns)
	handshakes, accepts := NewRecorder(), NewRecorder()
	release := make(chan struct{})
	var closing atomic.Bool
	var dropped atomic.Int64
	var firstDrop atomic.Pointer[error] // why the first connection lost after it was in ended
	var readers, wg sync.WaitGroup
	defer readers.Wait()
	for i := range clients {
		wg.Go(func() { // owner: Storm; ends when client i is in or has given up
			<-release
			cl := &clients[i]
			cl.run(rctx, d, i, fire, deadline, m)
			if cl.ws == nil {
				return
			}
			handshakes.Record(i, cl.handshake)
			accepts.Record(i, cl.accepted)
			m.rec.Record(i, cl.handshake)
			m.count.Add(1)
			m.conns.Add(1)
			readers.Go(func() { // owner: Storm; ends when the connection is closed
				for {
					if _, _, err := cl.ws.NextReader(); err != nil {
						if !closing.Load() {
							err = fmt.Errorf("client %d lost %v after it was in: %w", i, time.Since(fire)-cl.accepted, err)
							firstDrop.CompareAndSwap(nil, &err)
							dropped.Add(1)
							m.conns.Add(-1)
							m.errs.Add(1)
						}
						return
					}
				}
			})
		})
	}
	select {
	case <-time.After(time.Until(fire)):
	case <-ctx.Done():
	}
	m.setPhase("storm")
	close(release)
	wg.Wait()
	sr := &StormResult{Clients: c.Conns, FiredAt: fire}
	for i := range clients {
		cl := &clients[i]
		sr.Shed += cl.shed
		sr.TooMany += cl.tooMany
		sr.Honoured += cl.honoured
		sr.Failed += cl.failed
		if cl.ws == nil {
			res.DialErrors++
			res.noteError(cl.err)
			continue
		}
		sr.Accepted++
		if at := fire.Add(cl.accepted); at.After(sr.LastAccepted) {
			sr.LastAccepted = at
		}
	}
	if sr.Accepted > 0 {
		sr.Seconds = sr.LastAccepted.Sub(fire).Seconds()
		sr.HandshakesPerSec = float64(sr.Accepted) / sr.Seconds
	}
	hh, ah := handshakes.Total(), accepts.Total()
	sr.Handshake, sr.Accept = summarize(hh), summarize(ah)
	sr.HandshakeHist, sr.AcceptHist = encodeHist(hh), encodeHist(ah)

	m.setPhase("holding")
	select {
	case <-ctx.Done():
	case <-time.After(c.Duration):
	}
	closing.Store(true)
	for i := range clients {
		if ws := clients[i].ws; ws != nil {
			_ = ws.Close()
		}
	}
	readers.Wait()
	if err := firstDrop.Load(); err != nil {
		if res.FirstError == "" {
			res.noteError(*err)
		} else { // a dial's error came first: say the loss too
			res.FirstError += "; and " + (*err).Error()
		}
	}
	res.Series = m.finish()
	res.Storm = sr
	res.Opened, res.Dropped = sr.Accepted, int(dropped.Load())
	res.Messages, res.Seconds, res.MsgsPerSec = uint64(sr.Accepted), sr.Seconds, sr.HandshakesPerSec
	res.RampSeconds = sr.Seconds
	res.fillLatency(handshakes)
	res.IOErrors = uint64(res.Dropped)
	res.Errors = uint64(res.DialErrors) + res.IOErrors
	return res, nil
}

// run dials until the client is in, or deadline.
func (cl *stormClient) run(ctx context.Context, d *dialer, i int, fire, deadline time.Time, m *meter) {
	for backoff := 100 * time.Millisecond; ; {
		t0 := time.Now()
		ws, resp, err := d.dialers[i%len(d.dialers)].DialContext(ctx, d.urls[i%len(d.urls)], nil)
		if err == nil {
			cl.ws, cl.handshake, cl.accepted = ws, time.Since(t0), time.Since(fire)
			return
		}
		cl.err = err
		wait, honoured := time.Duration(0), false
		if resp != nil {
			if resp.Body != nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			switch resp.StatusCode {
			case http.StatusServiceUnavailable:
				cl.shed++
			case http.StatusTooManyRequests:
				cl.tooMany++
			}
			cl.err = fmt.Errorf("handshake answered %s", resp.Status)
			if ra, ok := client.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				// Retry-After counts whole seconds: spread the return over the second after it.
				wait, honoured = ra+rand.N(time.Second), true
			}
		}
		if !honoured {
			m.errs.Add(1)
			cl.failed++
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, 5*time.Second)
		}
		if time.Now().Add(wait).After(deadline) {
			cl.err = fmt.Errorf("not in by the end of the storm; last: %w", cl.err)
			return
		}
		select {
		case <-ctx.Done():
			cl.err = errors.Join(cl.err, ctx.Err())
			return
		case <-time.After(wait):
		}
		if honoured {
			cl.honoured++
		}
	}
}

func encodeHist(h *hdrhistogram.Histogram) string {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

// MergeStorms adds up the storms of several processes fired together: counts summed, the time
// from the earliest firing to the last client in, the histograms merged.
func MergeStorms(parts []*StormResult) (*StormResult, error) {
	if len(parts) == 0 {
		return nil, errors.New("no storm to merge")
	}
	sum := &StormResult{FiredAt: parts[0].FiredAt}
	hh, ah := newHist(), newHist()
	for _, p := range parts {
		sum.Clients += p.Clients
		sum.Accepted += p.Accepted
		sum.Shed += p.Shed
		sum.TooMany += p.TooMany
		sum.Honoured += p.Honoured
		sum.Failed += p.Failed
		if p.FiredAt.Before(sum.FiredAt) {
			sum.FiredAt = p.FiredAt
		}
		if p.LastAccepted.After(sum.LastAccepted) {
			sum.LastAccepted = p.LastAccepted
		}
		for _, x := range []struct {
			enc string
			h   *hdrhistogram.Histogram
		}{{p.HandshakeHist, hh}, {p.AcceptHist, ah}} {
			if x.enc == "" {
				continue
			}
			d, err := hdrhistogram.Decode([]byte(x.enc))
			if err != nil {
				return nil, fmt.Errorf("a storm's histogram: %w", err)
			}
			x.h.Merge(d)
		}
	}
	if sum.Accepted > 0 {
		sum.Seconds = sum.LastAccepted.Sub(sum.FiredAt).Seconds()
		sum.HandshakesPerSec = float64(sum.Accepted) / sum.Seconds
	}
	sum.Handshake, sum.Accept = summarize(hh), summarize(ah)
	return sum, nil
}

// Print writes a storm's summary.
func (s *StormResult) Print(w io.Writer) {
	fmt.Fprintf(w, "  storm: %d of %d clients in, the last %.2fs after the firing: %.0f handshakes/s\n",
		s.Accepted, s.Clients, s.Seconds, s.HandshakesPerSec)
	fmt.Fprintf(w, "  answered 503 %d times, 429 %d; %d retries after Retry-After, %d attempts failed otherwise\n",
		s.Shed, s.TooMany, s.Honoured, s.Failed)
	fmt.Fprintf(w, "  handshake (the accepted attempt): p50 %s  p99 %s  max %s\n", dur(s.Handshake.P50), dur(s.Handshake.P99), dur(s.Handshake.Max))
	fmt.Fprintf(w, "  in after (from the firing, waits included): p50 %s  p99 %s  max %s\n", dur(s.Accept.P50), dur(s.Accept.P99), dur(s.Accept.Max))
}
