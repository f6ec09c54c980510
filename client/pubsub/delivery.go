package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/protocol"
)

// maxHeld is the most live pushes a catch-up holds; beyond, they are fetched from history too.
const maxHeld = 1000

// sub is a subscription's delivery state, owned by Run's goroutine.
type sub struct {
	channel     string
	pos         *Position // the last publication delivered (or the subscribe's top); nil before any
	subscribing bool      // a subscribe is on the wire: pushes wait in early for its reply
	live        bool      // subscribed on the current connection
	server      bool      // the server made it (this session never asked): never subscribed by the session
	established bool      // the server accepted it once
	attempt     int       // temporary refusals in a row
	early       []push
	run         *catchUp // publications being fetched from history; live pushes wait in held
	held        []push
}

// push is a pub or gap push of the subscription's channel.
type push struct {
	gap    bool
	epoch  string
	offset uint64
	data   json.RawMessage
}

// catchUp is a fetch from history of the publications of epoch after the last one delivered, up
// to target.
type catchUp struct {
	epoch   string
	target  uint64
	attempt int
}

// reset forgets what the subscription held for its connection: the next subscribe recovers from
// the last publication delivered.
func (sb *sub) reset() {
	sb.subscribing, sb.live, sb.early, sb.run, sb.held = false, false, nil, nil, nil
}

func (s *Session) subscribe(ctx context.Context, sb *sub) {
	sb.reset()
	sb.subscribing = true
	req := protocol.Request{Op: protocol.OpSubscribe, Channel: sb.channel}
	if sb.pos != nil {
		p := *sb.pos
		req.Since = &p
	}
	s.request(ctx, req, func(r result) { s.subscribed(ctx, sb, r) })
}

// subscribed takes the reply to a subscribe.
func (s *Session) subscribed(ctx context.Context, sb *sub, r result) {
	if s.subs[sb.channel] != sb {
		return // the server ended it meanwhile
	}
	var pe *protocol.Error
	if sb.live && errors.As(r.err, &pe) && pe.Code == protocol.CodeAlreadySubscribed {
		return // the server subscribed it meanwhile (a subscribe push): it is
	}
	sb.subscribing = false
	var res protocol.SubscribeResult
	if r.err == nil {
		if err := json.Unmarshal(r.raw, &res); err != nil {
			r.err = fmt.Errorf("pubsub: a subscribe reply that does not parse: %w", err)
		}
	}
	if r.err != nil {
		s.report(sb.channel, r.err)
		if temporary(r.err) {
			sb.attempt++
			s.later(s.delay(sb.attempt), func() { s.subscribe(ctx, sb) })
		} else {
			delete(s.subs, sb.channel)
		}
		return
	}
	s.accept(ctx, sb, res, false)
}

// accept takes a subscription the server accepted (a subscribe reply), or made (server): from
// since when it recovers, else from the channel's top.
func (s *Session) accept(ctx context.Context, sb *sub, res protocol.SubscribeResult, server bool) {
	sb.subscribing, sb.live = false, true
	sb.attempt = 0
	since := sb.pos
	from := res.Offset // delivery goes on after the top, or after since if the server recovers it
	if res.Recovered && since != nil {
		from = 0 // since is in another epoch, or is the zero position: the stream's start
		if since.Epoch == res.Epoch {
			from = since.Offset
		}
	}
	sb.pos = &Position{Epoch: res.Epoch, Offset: from}
	if s.o.OnSubscribed != nil {
		s.o.OnSubscribed(Subscribed{Channel: sb.channel, Epoch: res.Epoch, Offset: res.Offset, Since: since,
			Recovered: res.Recovered, Resubscribed: sb.established, URL: s.url, Server: server})
	}
	sb.established = true
	early := sb.early
	sb.early = nil
	// The reply holds the first page of what is recovered; the rest, up to the top, comes from
	// history before any live push.
	run := s.catchUp(sb, res.Epoch, res.Offset)
	for _, p := range early {
		s.pushed(ctx, sb, p)
	}
	if res.Recovered {
		s.deliverStored(sb, res.Publications)
	}
	s.fetch(ctx, sb, run)
}

// pushed takes a pub or gap push. Offsets of an epoch are contiguous: a pub that skips some, a
// gap push beyond the last delivered, or a new epoch whose first push is not offset 1 (a
// clustered server names no epoch before the first publication) mean some were missed: they are
// fetched from history, the live pushes held meanwhile.
func (s *Session) pushed(ctx context.Context, sb *sub, p push) {
	if sb.subscribing {
		sb.early = append(sb.early, p)
		return
	}
	pos := sb.pos
	if pos == nil || !sb.live {
		return // not subscribed on this connection (yet)
	}
	if run := sb.run; run != nil {
		if len(sb.held) < maxHeld || p.epoch != run.epoch {
			sb.held = append(sb.held, p)
		} else { // not held without bound: what was held comes from history with the rest
			sb.held = nil
			run.target = max(run.target, p.offset)
		}
		return
	}
	fresh := p.epoch != pos.Epoch && (!p.gap || pos.Epoch == "")
	switch {
	case p.epoch == pos.Epoch && (p.gap || p.offset != pos.Offset+1):
		if p.offset <= pos.Offset {
			return // delivered already
		}
	case fresh && (p.gap || p.offset > 1):
		sb.pos = &Position{Epoch: p.epoch}
	case p.gap:
		return // about another epoch: its pushes say what matters
	default:
		sb.pos = &Position{Epoch: p.epoch, Offset: p.offset}
		if s.o.OnPublication != nil {
			s.o.OnPublication(Publication{Channel: sb.channel, Epoch: p.epoch, Offset: p.offset, Data: p.data})
		}
		return
	}
	target := p.offset
	if !p.gap {
		target--
	}
	run := s.catchUp(sb, p.epoch, target)
	if !p.gap {
		sb.held = append(sb.held, p)
	}
	s.fetch(ctx, sb, run)
}

// catchUp starts fetching sb's publications of epoch up to target: live pushes are held from now.
func (s *Session) catchUp(sb *sub, epoch string, target uint64) *catchUp {
	run := &catchUp{epoch: epoch, target: target}
	sb.run, sb.held = run, nil
	return run
}

// fetch asks history for the next page of run, or ends it when the target is reached.
func (s *Session) fetch(ctx context.Context, sb *sub, run *catchUp) {
	if sb.run != run {
		return
	}
	since := *sb.pos
	if since.Epoch != run.epoch || since.Offset >= run.target {
		s.finish(ctx, sb, run)
		return
	}
	limit := min(run.target-since.Offset, protocol.MaxHistoryLimit)
	req := protocol.Request{Op: protocol.OpHistory, Channel: sb.channel, Since: &since, Limit: int(limit)}
	s.request(ctx, req, func(r result) { s.page(ctx, sb, run, r) })
}

// page takes a history reply of run: its publications are delivered as recovered; what history
// no longer has is told by OnGap. A temporary refusal or an empty page that says more (the
// connection's queue was full) is asked again after a backoff delay.
func (s *Session) page(ctx context.Context, sb *sub, run *catchUp, r result) {
	if sb.run != run {
		return
	}
	var h protocol.HistoryResult
	if r.err == nil {
		if err := json.Unmarshal(r.raw, &h); err != nil {
			r.err = fmt.Errorf("pubsub: a history reply that does not parse: %w", err)
		}
	}
	switch {
	case r.err != nil && temporary(r.err):
		run.attempt++
		s.later(s.delay(run.attempt), func() { s.fetch(ctx, sb, run) })
		return
	case r.err != nil:
		s.report(sb.channel, r.err)
		s.lose(sb, Position{Epoch: run.epoch, Offset: run.target})
		s.finish(ctx, sb, run)
		return
	case h.Epoch != run.epoch:
		s.lose(sb, h.Position)
		s.finish(ctx, sb, run)
		return
	}
	pubs := h.Publications
	if !h.Complete {
		to := h.Offset
		if len(pubs) > 0 {
			to = pubs[0].Offset - 1
		}
		s.lose(sb, Position{Epoch: run.epoch, Offset: to})
	}
	s.deliverStored(sb, pubs)
	switch {
	case len(pubs) > 0:
		run.attempt = 0
		s.fetch(ctx, sb, run)
	case h.More:
		run.attempt++
		s.later(s.delay(run.attempt), func() { s.fetch(ctx, sb, run) })
	default:
		s.finish(ctx, sb, run) // nothing after since: the stream ends before the target
	}
}

// finish ends run and takes the pushes it held, in order.
func (s *Session) finish(ctx context.Context, sb *sub, run *catchUp) {
	if sb.run != run {
		return
	}
	held := sb.held
	sb.run, sb.held = nil, nil
	for _, p := range held {
		s.pushed(ctx, sb, p)
	}
}

// deliverStored delivers publications of the current epoch from history, as recovered: those
// after the last one delivered.
func (s *Session) deliverStored(sb *sub, pubs []protocol.Publication) {
	for _, p := range pubs {
		if p.Offset <= sb.pos.Offset {
			continue
		}
		sb.pos = &Position{Epoch: sb.pos.Epoch, Offset: p.Offset}
		if s.o.OnPublication != nil {
			s.o.OnPublication(Publication{Channel: sb.channel, Epoch: sb.pos.Epoch, Offset: p.Offset, Data: p.Data, Recovered: true})
		}
	}
}

// lose says that the publications after the last one delivered, up to to, cannot be had;
// delivery goes on after to.
func (s *Session) lose(sb *sub, to Position) {
	since := *sb.pos
	if to.Epoch == since.Epoch && to.Offset <= since.Offset {
		return
	}
	sb.pos = &to
	if s.o.OnGap != nil {
		s.o.OnGap(Gap{Channel: sb.channel, Since: since, Epoch: to.Epoch, Offset: to.Offset})
	}
}

func (s *Session) report(channel string, err error) {
	if s.o.OnError != nil {
		s.o.OnError(channel, err)
	}
}

// temporary reports whether the server refused for now (a 2xx code): ask again later.
func temporary(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code >= 200 && pe.Code < 300
}
