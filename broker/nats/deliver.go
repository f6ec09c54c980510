package nats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// msgQueueLen bounds the publications received and not yet dispatched, all channels together.
// Beyond it nats.go drops them (a slow consumer); the catch-up reads them back from history.
const msgQueueLen = 1 << 14

// maxHeld bounds the publications of one channel held while a catch-up reads history. Beyond
// it later ones are dropped and read from history in the catch-up's next round.
const maxHeld = 1024

// catchUpPage is how many publications a catch-up reads from history at a time.
const catchUpPage = 256

// catchUpTries bounds the history reads a catch-up tries, a little longer apart each time (6.5 s
// in all: JetStream may take a while to recover its streams after a restart), before it gives up
// on the missing publications and delivers what it holds (the hub sees the jump in offsets).
// While JetStream cannot be read nothing can be published either, so little is held meanwhile.
const catchUpTries = 10

// maxReads bounds the history reads this node's catch-ups and checks make at once. After a
// reconnect every subscribed channel catches up: without a bound, thousands of reads of the top
// from the stream's leader at once would overflow JetStream's API queue and fail them all.
const maxReads = 16

// subState is this node's subscription to one channel. Its mu is held while delivering, so that
// the channel's publications are delivered one at a time, in order, by the dispatcher or by the
// channel's catch-up, never both.
type subState struct {
	b       *Broker
	channel string
	sub     *natsgo.Subscription

	mu       sync.Mutex
	dead     bool            // unsubscribed
	known    bool            // pos is set
	pos      broker.Position // the last delivered, or the channel's top when subscribing
	catching bool            // a catch-up goroutine owns delivery; the dispatcher holds
	held     []broker.Publication
	overflow bool // held was full and dropped some
}

// Subscribe implements broker.Broker: a core subscription on the channel's delivery subject,
// confirmed by the server before it returns, so that every publication acknowledged after it
// reaches this node.
//
// The stream's leader republishes, and this node's interest reaches the leader's server over
// the cluster's routes a moment after this node's server confirmed it: a publication stored in
// that moment reaches nobody, although its acknowledgement may come after Subscribe returned.
// So Subscribe reads the channel's top from the leader before subscribing; once the
// subscription is confirmed, it sends the leader a publication the stream refuses (reachLeader),
// which follows the interest on the same route; then it reads the top again, and if it moved, a
// catch-up delivers what follows the first.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if len(channel) > maxNameLen {
		return fmt.Errorf("broker/nats: channel of %d bytes, more than %d", len(channel), maxNameLen)
	}
	subj, in := b.out+subjectToken(channel), b.in+subjectToken(channel)
	s := &subState{b: b, channel: channel}
	// The top before the interest exists, from which a jump in offsets is seen as a gap; a
	// failure (no JetStream quorum) leaves the first publication received to set it. Each step
	// has a Timeout of its own: the subscription does not need JetStream.
	base, baseOK, baseErr := stored{}, false, b.connected()
	if baseErr == nil {
		cctx, cancel := b.call(ctx)
		base, baseOK, baseErr = b.lastAcked(cctx, in)
		cancel()
	}
	if baseErr == nil {
		s.known = true
		if baseOK {
			s.pos = base.pos
		}
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return fmt.Errorf("broker/nats: subscribe: %w", broker.ErrClosed)
	case !b.started:
		b.mu.Unlock()
		return errors.New("broker/nats: subscribe before Start")
	case b.subs[subj] != nil:
		b.mu.Unlock()
		return nil // already: the hub does not do this
	}
	sub, err := b.nc.ChanSubscribe(subj, b.msgs)
	if err != nil {
		b.mu.Unlock()
		return b.unavailable(ctx, "subscribe", err)
	}
	s.sub = sub
	b.subs[subj] = s
	b.mu.Unlock()

	cctx, cancel := b.call(ctx)
	defer cancel()
	err = b.connected()
	if err == nil {
		err = b.nc.FlushWithContext(cctx)
	}
	if err != nil {
		b.drop(subj, s)
		return b.unavailable(ctx, "subscribe", err)
	}
	if baseErr != nil {
		return nil
	}
	cancel()
	cctx, cancel = b.call(ctx)
	defer cancel()
	err = b.reachLeader(cctx, in)
	var (
		top stored
		ok  bool
	)
	if err == nil {
		top, ok, err = b.lastAcked(cctx, in)
	}
	if err == nil && ok == baseOK && top.seq == base.seq {
		return nil // nothing stored meanwhile
	}
	// Stored meanwhile, maybe before the leader's server knew of this node (or the top is
	// unknown): the catch-up reads history after the last delivered, and delivers it.
	s.mu.Lock()
	s.startCatchUp()
	s.mu.Unlock()
	return nil
}

// Unsubscribe implements broker.Broker.
func (b *Broker) Unsubscribe(_ context.Context, channel string) error {
	subj := b.out + subjectToken(channel)
	b.mu.Lock()
	s := b.subs[subj]
	b.mu.Unlock()
	if s != nil {
		b.drop(subj, s)
	}
	return nil
}

// drop ends the subscription s of subj.
func (b *Broker) drop(subj string, s *subState) {
	b.mu.Lock()
	if b.subs[subj] == s {
		delete(b.subs, subj)
	}
	b.mu.Unlock()
	s.drop()
}

// drop ends s: no delivery after it returns.
func (s *subState) drop() {
	_ = s.sub.Unsubscribe()
	s.mu.Lock()
	s.dead, s.held = true, nil
	s.mu.Unlock()
}

// dispatch hands every received publication to its channel's subscription, until Close.
func (b *Broker) dispatch() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.msgs:
			b.mu.Lock()
			s := b.subs[m.Subject]
			b.mu.Unlock()
			if s == nil || s.sub != m.Sub {
				continue // unsubscribed since, or a previous subscription's
			}
			st, err := parseStored(m)
			if err != nil {
				continue
			}
			p := broker.Publication{Channel: s.channel, Epoch: st.pos.Epoch, Offset: st.pos.Offset, Data: st.data, Trace: st.trace}
			if b.lose != nil && b.lose(p) {
				continue
			}
			s.receive(p)
		}
	}
}

// receive delivers p, drops it as a duplicate, or, after a gap, holds it and starts a
// catch-up that delivers the missing publications first.
func (s *subState) receive(p broker.Publication) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.dead:
	case s.catching:
		s.hold(p)
	case !s.known, !s.sameStream(p) && p.Offset == 1:
		s.deliver(p)
	case !s.sameStream(p): // a new epoch, its first publications missing: a gap
		s.hold(p)
		s.startCatchUp()
	case p.Offset <= s.pos.Offset: // a duplicate
	case p.Offset == s.pos.Offset+1:
		s.deliver(p)
	default: // a gap
		s.hold(p)
		s.startCatchUp()
	}
}

// sameStream reports whether p follows s.pos in one stream: the same epoch, or any epoch after
// the zero position (the channel had no publication when subscribed). Called with s.mu.
func (s *subState) sameStream(p broker.Publication) bool {
	return p.Epoch == s.pos.Epoch || s.pos == broker.Position{}
}

// deliver hands p to the hub. Called with s.mu.
func (s *subState) deliver(p broker.Publication) {
	s.b.deliver(p)
	s.pos, s.known = broker.Position{Epoch: p.Epoch, Offset: p.Offset}, true
}

// hold keeps p for the catch-up, up to maxHeld. Called with s.mu.
func (s *subState) hold(p broker.Publication) {
	if len(s.held) >= maxHeld {
		s.overflow = true
		return
	}
	s.held = append(s.held, p)
}

// startCatchUp starts the channel's catch-up unless one runs or the broker is closing. Called
// with s.mu.
func (s *subState) startCatchUp() {
	if s.catching || s.dead {
		return
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	s.catching = true
	b.wg.Add(1)
	go s.catchUp() // owner: the Broker; stops on Close (b.stop) or Unsubscribe, waited for by b.wg
}

// reconnected reads the top of every subscribed channel once the connection is back, and
// delivers what was published meanwhile.
func (b *Broker) reconnected() {
	b.mu.Lock()
	subs := make([]*subState, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.startCatchUp()
		s.mu.Unlock()
	}
}

// dropped starts a catch-up for the channel of sub, whose messages nats.go dropped: the last of
// them may be the last publication for a while, and no later one would show the gap.
func (b *Broker) dropped(sub *natsgo.Subscription) {
	b.mu.Lock()
	s := b.subs[sub.Subject]
	b.mu.Unlock()
	if s == nil || s.sub != sub {
		return
	}
	s.mu.Lock()
	s.startCatchUp()
	s.mu.Unlock()
}

// catchUp reads the channel's history from the last delivered publication and delivers it,
// then what was held meanwhile, until nothing is missing.
func (s *subState) catchUp() {
	b := s.b
	defer b.wg.Done()
	ctx := b.ctx // cancelled by Close
	if b.pauseCatchUp != nil {
		b.pauseCatchUp()
	}
	fails := 0
	epoch := "" // a new epoch the channel's top is in, to read from its start
	for {
		s.mu.Lock()
		from, known := s.pos, s.known
		if epoch != "" && from.Epoch != epoch && from != (broker.Position{}) {
			from = broker.Position{Epoch: epoch} // what history has of it, from offset 1
		}
		s.overflow = false
		s.mu.Unlock()

		var (
			r   broker.HistoryResult
			err error
		)
		if !b.acquireRead(ctx) {
			return
		}
		if known {
			r, err = b.historyUpTo(ctx, s.channel, &from, catchUpPage, uncapped)
		} else {
			r, err = b.historyUpTo(ctx, s.channel, nil, 1, uncapped) // no baseline yet: the top becomes it
		}
		b.releaseRead()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails = 0
			if known && r.Epoch != "" && r.Epoch != from.Epoch && from != (broker.Position{}) && r.Epoch != epoch {
				// The channel started a new epoch since from: history has nothing after from,
				// and the new epoch is read from its start before anything held is delivered.
				epoch = r.Epoch
				continue
			}
		} else {
			if fails++; fails < catchUpTries {
				select {
				case <-time.After(min(time.Duration(fails)*100*time.Millisecond, time.Second)):
				case <-ctx.Done():
					return
				}
				continue
			}
			b.opts.Logger.Warn("broker/nats: catch-up failed; delivering what arrived, with a gap",
				"channel", s.channel, "err", err)
		}
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			return
		}
		progressed := false
		if err == nil && !known {
			if len(s.held) == 0 { // else the first held sets it
				s.pos, s.known = r.Position, true
			}
			progressed = true
		} else {
			for _, p := range r.Publications {
				if !s.sameStream(p) || p.Offset > s.pos.Offset {
					s.deliver(p)
					progressed = true
				}
			}
		}
		if err == nil && r.More {
			s.mu.Unlock()
			continue
		}
		// What was held, while it follows on.
		for len(s.held) > 0 {
			p := s.held[0]
			switch {
			case s.known && s.sameStream(p) && p.Offset <= s.pos.Offset: // read from history already
			case !s.known || !s.sameStream(p) || p.Offset == s.pos.Offset+1 || !progressed || err != nil:
				// In order, or of a new epoch, or missing for good: history had nothing
				// between, or cannot be read.
				s.deliver(p)
				progressed = true
			default:
				goto again
			}
			s.held = s.held[1:]
		}
		if !s.overflow {
			s.held, s.catching = nil, false
			s.mu.Unlock()
			return
		}
	again:
		s.mu.Unlock()
	}
}

// reachLeader returns once the stream's leader has seen every subscription this connection made
// before: it sends a publication to subj that the stream refuses without storing it (it expects
// the subject's last sequence to be one no stream reaches), which travels from this node's
// server to the leader's over the route of the account, after the interest this node's server
// sent on that route before. (A request to the stream API would not do: it goes over the
// system account's route.) On one server, nothing travels: it returns at once.
func (b *Broker) reachLeader(ctx context.Context, subj string) error {
	if b.nc.ConnectedClusterName() == "" {
		return nil
	}
	m := &natsgo.Msg{Subject: subj, Header: natsgo.Header{
		natsgo.ExpectedLastSubjSeqHdr: []string{strconv.FormatUint(math.MaxUint64, 10)},
		natsgo.ExpectedStreamHdr:      []string{b.opts.Stream},
	}}
	resp, err := b.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return err
	}
	ack, err := parseAck(resp.Data)
	switch {
	case err != nil:
		return err
	case ack.Error == nil:
		return fmt.Errorf("the stream stored a publication it had to refuse, at sequence %d", ack.Seq)
	case wrongLastSeq(ack.Error):
		return nil
	case ack.Error.Code == 503 || ack.Error.ErrCode == errCodeNoStream:
		return fmt.Errorf("%w: %w", errNotConnected, ack.Error)
	}
	return ack.Error
}

// acquireRead waits for one of the maxReads reads a node makes at once for its catch-ups and
// checks; false when ctx ended first.
func (b *Broker) acquireRead(ctx context.Context) bool {
	select {
	case b.reads <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// releaseRead ends a read acquireRead allowed.
func (b *Broker) releaseRead() { <-b.reads }
