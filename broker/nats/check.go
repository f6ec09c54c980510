package nats

import (
	"context"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// checkBatch bounds the channels whose tops one check request reads (the server answers at most
// 1,024): up to 128 messages in one answer, each a channel's last publication.
const checkBatch = 128

// checkGrace is how long a check lets a republication in flight arrive before it catches up a
// channel whose top it found ahead of what was delivered: a busy channel's top is usually ahead
// by a publication on its way, and a catch-up for it would be a history read for nothing.
const checkGrace = 200 * time.Millisecond

// leaderElected is the subject of JetStream's advisory that a stream elected a leader, followed
// by the stream's name. It is published in the stream's account, where the broker listens.
const leaderElected = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

// subjectHeader names a message's subject in a direct get's answer.
const subjectHeader = "Nats-Subject"

// checks reads the top of every subscribed channel each CheckInterval, and when the stream
// elects a leader, and catches up those whose top is ahead of what was delivered: a
// republication lost in flight (a leader lost right after it acknowledged, a partition this
// node's connection survived) that no later publication shows as a gap. Runs until Close.
func (b *Broker) checks() {
	defer b.wg.Done()
	var tick <-chan time.Time
	if b.opts.CheckInterval > 0 {
		t := time.NewTicker(b.opts.CheckInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-b.stop:
			return
		case <-tick:
		case <-b.checkNow:
		}
		b.checkTops()
	}
}

// checkSoon has the checker check every channel's top now (or right after the check running).
func (b *Broker) checkSoon() {
	select {
	case b.checkNow <- struct{}{}:
	default: // one is due already
	}
}

// checkTops reads the tops of all subscribed channels, checkBatch at a time, with batched direct
// gets (any replica answers: one a moment behind is caught up with at the next check), and
// catches up the channels still behind them after checkGrace.
func (b *Broker) checkTops() {
	if b.connected() != nil {
		return // the reconnect catches every channel up
	}
	b.mu.Lock()
	subs := make([]*subState, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	type late struct {
		s   *subState
		top broker.Position
	}
	var behind []late
	for len(subs) > 0 {
		batch := subs[:min(len(subs), checkBatch)]
		subs = subs[len(batch):]
		bySubj := make(map[string]*subState, len(batch))
		subjs := make([]string, 0, len(batch))
		for _, s := range batch {
			subj := b.in + subjectToken(s.channel)
			bySubj[subj] = s
			subjs = append(subjs, subj)
		}
		if !b.acquireRead(b.ctx) {
			return
		}
		ctx, cancel := b.call(b.ctx)
		tops, more, err := b.lastOfEach(ctx, subjs)
		cancel()
		b.releaseRead()
		if err != nil {
			if b.ctx.Err() == nil {
				b.opts.Logger.Debug("broker/nats: checking the channels' tops", "err", err)
			}
			return // the next check tries again
		}
		for subj, top := range tops {
			if s := bySubj[subj]; s != nil && s.behind(top.pos) {
				behind = append(behind, late{s, top.pos})
			}
		}
		if more && len(tops) > 0 { // the answer was cut at the server's bytes: the rest again
			for _, s := range batch {
				if _, ok := tops[b.in+subjectToken(s.channel)]; !ok {
					subs = append(subs, s)
				}
			}
		}
	}
	if len(behind) == 0 {
		return
	}
	select {
	case <-time.After(checkGrace):
	case <-b.stop:
		return
	}
	for _, l := range behind {
		l.s.mu.Lock()
		if l.s.behindLocked(l.top) {
			l.s.startCatchUp()
		}
		l.s.mu.Unlock()
	}
}

// behind reports whether the channel's top is ahead of what s delivered, with no catch-up
// running.
func (s *subState) behind(top broker.Position) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behindLocked(top)
}

// behindLocked is behind, called with s.mu.
func (s *subState) behindLocked(top broker.Position) bool {
	return !s.dead && s.known && !s.catching && (top.Epoch != s.pos.Epoch || top.Offset > s.pos.Offset)
}

// lastOfEach returns the last stored message of each subject that has one, by subject: one
// direct get of the multi_last form, which the server answers with one message per subject
// (at most 1,024) and a 204 status, or a 404 when none has a message. more is true when the
// server stopped early, at the bytes it sends at once (64 MB by default): some subjects with a
// message are missing from the answer.
func (b *Broker) lastOfEach(ctx context.Context, subjs []string) (_ map[string]stored, more bool, err error) {
	out := make(map[string]stored, len(subjs))
	status, pending, err := b.directBatch(ctx, getRequest{MultiLast: subjs, MaxBytes: b.checkBytes}, len(subjs), func(m *natsgo.Msg) (bool, error) {
		if s, err := parseStored(m); err == nil {
			out[m.Header.Get(subjectHeader)] = s
		}
		return false, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, status == "204" && pending != "0", nil
}
