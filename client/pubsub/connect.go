package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// refreshLeadMax is the most a refresh comes before the token's expiry, before the jitter.
const refreshLeadMax = 30 * time.Second

// tokens is the session's token, owned by Run's goroutine.
type tokens struct {
	cur       string
	have      bool      // cur came from Options.Token or GetToken
	stale     bool      // refused as expired, or closed with 4501: the next one comes from GetToken
	expiresAt time.Time // when the server said it lapses; zero: unknown or never
}

// enabled reports whether the session identifies itself: connect first on every connection.
func (t *tokens) enabled(o Options) bool { return o.Token != "" || o.GetToken != nil }

// accepted records that the server took the token, for expiresIn more seconds (0: for ever).
func (t *tokens) accepted(expiresIn int64) {
	t.expiresAt = time.Time{}
	if expiresIn > 0 {
		t.expiresAt = time.Now().Add(time.Duration(expiresIn) * time.Second)
	}
}

// connState is what one connection of the session keeps for its identity, owned by Run's
// goroutine (wg aside).
type connState struct {
	ctx        context.Context // ends with the connection: the GetToken calls of refreshes
	wg         sync.WaitGroup  // those calls, waited for when the connection ends
	fail       error           // set by a reply or a task: the connection ends with it
	refreshing bool
	attempt    int // refreshes failed in a row
}

// refreshDelay is when to refresh a token that expires in expiresIn seconds: a tenth of its life
// before the expiry (at most refreshLeadMax), plus as much again at random, so that sessions that
// connected together do not ask for tokens at the same moment. As the JS client's refreshDelay.
func refreshDelay(expiresIn int64, random func() float64) time.Duration {
	life := time.Duration(expiresIn) * time.Second
	lead := min(refreshLeadMax, life/10)
	return max(0, life-time.Duration(float64(lead)*(1+random())))
}

// prepareToken makes the token fit for a new connection: from GetToken when there is none yet,
// or it is stale or expired. A GetToken error is told to OnError and fails the attempt.
func (s *Session) prepareToken(ctx context.Context) error {
	t := &s.tok
	fresh := t.have && !t.stale && (t.expiresAt.IsZero() || time.Now().Before(t.expiresAt))
	if s.o.GetToken == nil || fresh {
		return nil
	}
	tok, err := s.o.GetToken(ctx)
	if err != nil {
		err = fmt.Errorf("pubsub: GetToken: %w", err)
		s.report("", err)
		return err
	}
	*t = tokens{cur: tok, have: true}
	return nil
}

// fetchToken asks GetToken on a goroutine of the connection and hands the answer to then on Run's
// goroutine, unless the connection ends first.
func (s *Session) fetchToken(then func(string, error)) {
	st, tasks, done := &s.conn1, s.tasks, s.done
	st.wg.Add(1)
	go func() { // owner: serve, which cancels st.ctx and waits for st.wg when the connection ends
		defer st.wg.Done()
		tok, err := s.o.GetToken(st.ctx)
		select {
		case tasks <- func() { then(tok, err) }:
		case <-done:
		}
	}()
}

// connect sends connect with token, first on the connection; nothing else goes before its reply,
// which must come within writeTimeout.
func (s *Session) connect(ctx context.Context, token string, retried bool) {
	answered := false
	s.request(ctx, protocol.Request{Op: protocol.OpConnect, Token: token}, func(r result) {
		answered = true
		s.connected(ctx, r, retried)
	})
	s.later(writeTimeout, func() {
		if !answered && s.conn1.fail == nil {
			s.conn1.fail = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "no reply to connect"}
		}
	})
}

// connected takes the reply to a connect. 110 (expired) is answered with a fresh token from
// GetToken, once; 109, or 110 again, ends Run with ErrUnauthorized; a 2xx refusal ends the
// connection, to reconnect with backoff; another 1xx ends Run.
func (s *Session) connected(ctx context.Context, r result, retried bool) {
	var res protocol.ConnectResult
	if r.err == nil {
		if err := json.Unmarshal(r.raw, &res); err != nil {
			r.err = fmt.Errorf("pubsub: a connect reply that does not parse: %w", err)
		}
	}
	var pe *protocol.Error
	switch {
	case r.err == nil:
	case errors.As(r.err, &pe) && pe.Code == protocol.CodeTokenExpired && !retried && s.o.GetToken != nil:
		s.tok.stale = true
		s.fetchToken(func(tok string, err error) {
			if err != nil {
				s.report("", fmt.Errorf("pubsub: GetToken: %w", err))
				s.conn1.fail = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "GetToken failed", Err: err}
				return
			}
			s.tok = tokens{cur: tok, have: true}
			s.connect(ctx, tok, true)
		})
		return
	case errors.As(r.err, &pe) && (pe.Code == protocol.CodeUnauthorized || pe.Code == protocol.CodeTokenExpired):
		s.tok.stale = true // a later Run asks GetToken first
		s.conn1.fail = fmt.Errorf("%w: %w", ErrUnauthorized, pe)
		return
	case temporary(r.err):
		s.conn1.fail = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Reason: "connect refused for now", Err: r.err}
		return
	default:
		s.conn1.fail = fmt.Errorf("pubsub: connect: %w", r.err)
		return
	}
	s.tok.accepted(res.ExpiresIn)
	s.scheduleRefresh(ctx, res.ExpiresIn)
	s.setReady()
	if s.o.OnConnected != nil {
		chs := make([]string, len(res.Subscribed))
		for i, sc := range res.Subscribed {
			chs[i] = sc.Channel
		}
		s.o.OnConnected(Connected{URL: s.url, Client: res.Client, User: res.User, ExpiresIn: time.Duration(res.ExpiresIn) * time.Second, Subscribed: chs})
	}
	s.restore(ctx, res.Subscribed)
	s.subscribeAll(ctx)
}

func (s *Session) setReady() {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
}

func (s *Session) isReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// subscribeAll subscribes what this session subscribed and the connection does not have yet.
func (s *Session) subscribeAll(ctx context.Context) {
	for _, sb := range slices.Clone(s.order) {
		if s.subs[sb.channel] == sb && !sb.server && !sb.live && !sb.subscribing {
			s.subscribe(ctx, sb)
		}
	}
}

// restore takes up the subscriptions the server made at connect. A server-made subscription of
// the last connection that the server did not make again is over: the session never subscribes
// one itself (it may not be allowed to), so OnUnsubscribed says it ended. One this session made,
// that the server made now, is the server's on this connection: it catches up from its position
// through history instead of subscribing.
func (s *Session) restore(ctx context.Context, made []protocol.SubscribedChannel) {
	for _, sb := range slices.Clone(s.order) {
		if sb.server && !slices.ContainsFunc(made, func(sc protocol.SubscribedChannel) bool { return sc.Channel == sb.channel }) {
			s.ended(sb)
		}
	}
	for _, sc := range made {
		s.serverSubscribed(ctx, sc, true)
	}
}

// serverSubscribed takes a subscription the server made: at connect, or with a subscribe push. A
// channel known from the last connection (or subscribed by this session) goes on from its
// position, the publications since fetched from history; a new one starts at the channel's top.
func (s *Session) serverSubscribed(ctx context.Context, sc protocol.SubscribedChannel, atConnect bool) {
	sb := s.subs[sc.Channel]
	if sb != nil && sb.live && !atConnect {
		return // subscribed on this connection already: the same stream
	}
	if sb == nil {
		sb = &sub{channel: sc.Channel, server: true}
		s.subs[sc.Channel] = sb
		s.order = append(s.order, sb)
	}
	since := sb.pos
	recovered := since != nil && since.Epoch == sc.Epoch && since.Offset <= sc.Offset
	early := sb.early
	sb.reset()
	sb.early = early
	s.accept(ctx, sb, protocol.SubscribeResult{Epoch: sc.Epoch, Offset: sc.Offset, Recovered: recovered}, true)
}

// ended forgets a subscription the server ended, and says so.
func (s *Session) ended(sb *sub) {
	if s.subs[sb.channel] != sb {
		return
	}
	delete(s.subs, sb.channel)
	s.order = slices.DeleteFunc(s.order, func(o *sub) bool { return o == sb })
	sb.reset()
	call(s.o.OnUnsubscribed, sb.channel)
}

// scheduleRefresh refreshes the token a little before it expires, in expiresIn seconds.
func (s *Session) scheduleRefresh(ctx context.Context, expiresIn int64) {
	if expiresIn > 0 && s.o.GetToken != nil {
		s.later(refreshDelay(expiresIn, s.o.Random), func() { s.refresh(ctx) })
	}
}

// refresh sends a refresh with a fresh token from GetToken. A failure (GetToken's, a 2xx
// refusal) is told to OnError and tried again with backoff while the connection lasts; a 1xx
// refusal is told and left: the server closes with 4501 at the expiry, and the next connection
// asks GetToken again.
func (s *Session) refresh(ctx context.Context) {
	st := &s.conn1
	if st.refreshing || s.o.GetToken == nil || !s.isReady() {
		return
	}
	st.refreshing = true
	retry := func(err error) {
		st.refreshing = false
		s.report("", err)
		st.attempt++
		s.later(s.delay(st.attempt), func() { s.refresh(ctx) })
	}
	s.fetchToken(func(tok string, err error) {
		if err != nil {
			retry(fmt.Errorf("pubsub: GetToken: %w", err))
			return
		}
		s.tok = tokens{cur: tok, have: true, expiresAt: s.tok.expiresAt}
		s.request(ctx, protocol.Request{Op: protocol.OpRefresh, Token: tok}, func(r result) {
			var res protocol.RefreshResult
			if r.err == nil {
				if err := json.Unmarshal(r.raw, &res); err != nil {
					r.err = fmt.Errorf("pubsub: a refresh reply that does not parse: %w", err)
				}
			}
			switch {
			case r.err == nil:
				st.refreshing, st.attempt = false, 0
				s.tok.accepted(res.ExpiresIn)
				s.scheduleRefresh(ctx, res.ExpiresIn)
			case temporary(r.err):
				retry(fmt.Errorf("pubsub: refresh: %w", r.err))
			default:
				st.refreshing = false
				s.report("", fmt.Errorf("pubsub: refresh: %w", r.err))
			}
		})
	})
}
