package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// maxAnswer bounds what is read of the backend's answer (then discarded), so that the
// connection can be reused without a backend making the node read without end.
const maxAnswer = 64 << 10

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// deliver consumes the outbox until Close: each event is POSTed until the backend
// acknowledges it.
func (s *Sender) deliver() {
	defer close(s.served)
	failures := 0
	for {
		err := s.outbox.Consume(s.ctx, s.post)
		if s.ctx.Err() != nil || errors.Is(err, broker.ErrClosed) {
			return
		}
		failures++ // Consume gave up (its store unreachable): try again
		s.opts.Logger.Warn("events: consuming the outbox", "err", err)
		select {
		case <-time.After(s.backoff(failures)):
		case <-s.ctx.Done():
			return
		}
	}
}

// post delivers one event, trying again with backoff until the backend acknowledges it with a
// 2xx or ctx ends. A lost node's disconnect gets its time when its delivery begins.
func (s *Sender) post(ctx context.Context, ev []byte) error {
	ev = stamp(ev, time.Now())
	for failures := 0; ; {
		err := s.attempt(ctx, ev)
		if err == nil {
			s.delivered.Add(1)
			if s.down.CompareAndSwap(true, false) {
				s.opts.Logger.Info("events: the backend acknowledges events again")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.failed.Add(1)
		failures++
		if s.down.CompareAndSwap(false, true) {
			s.opts.Logger.Warn("events: the backend does not acknowledge events; retrying with backoff", "err", err)
		} else {
			s.opts.Logger.Debug("events: an attempt failed", "err", err, "failures", failures)
		}
		select {
		case <-time.After(s.backoff(failures)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// attempt makes one POST, within a span when traced.
func (s *Sender) attempt(ctx context.Context, ev []byte) error {
	if s.opts.Tracer == nil {
		return s.post1(ctx, ev, nil)
	}
	h := http.Header{}
	end := s.opts.Tracer.StartCall(ctx, "event", h)
	err := s.post1(ctx, ev, h)
	end(err)
	return err
}

// post1 makes one POST, with trace's headers added.
func (s *Sender) post1(ctx context.Context, ev []byte, trace http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(ev))
	if err != nil {
		return err
	}
	for k, vs := range s.opts.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for k, vs := range trace {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("events: the backend answered %s", resp.Status)
	}
	return nil
}
