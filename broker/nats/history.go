package nats

import (
	"context"
	"fmt"
	"math"

	"github.com/wsgate/wsgate/broker"
)

// scanSpan is how close to the wanted offset a seek stops: from there, the batch reads and
// skips the few before it rather than probing again.
const scanSpan = 32

// History implements broker.Broker; it creates nothing. It reads the channel's top from the
// stream's leader, so that every publication acknowledged before it is within the reply, then
// with direct gets the channel's first message kept, finds the stream sequence of the first
// publication wanted (an interpolation search over the stream's sequences, offsets growing with
// them) and reads the publications in batches. In a replicated stream a direct get may be
// answered by a replica a little behind the leader: what such a replica does not hold yet, up
// to the top, is read from the leader.
//
// A channel's history holds at most its namespace's HistorySize publications, the latest: the
// stream may keep more of them (its per-subject bound is the largest of all namespaces), and
// those are not returned, as if gone.
func (b *Broker) History(ctx context.Context, channel string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return b.historyUpTo(ctx, channel, since, limit, b.limitsOf(channel).size)
}

// uncapped is the size of a read of all the stream holds of a channel: a catch-up's, which
// delivers to this node's subscribers what they missed in transit, whatever their namespace
// lets a client recover (its last publication, in a namespace that keeps none).
const uncapped = math.MaxInt

// historyUpTo is History returning at most the size latest publications of the channel.
func (b *Broker) historyUpTo(ctx context.Context, channel string, since *broker.Position, limit, size int) (broker.HistoryResult, error) {
	if len(channel) > maxNameLen {
		return broker.HistoryResult{}, fmt.Errorf("broker/nats: channel of %d bytes, more than %d", len(channel), maxNameLen)
	}
	if err := b.connected(); err != nil {
		return broker.HistoryResult{}, b.unavailable(ctx, "history", err)
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	r, err := b.history(cctx, b.in+subjectToken(channel), since, limit, size)
	if err != nil {
		return broker.HistoryResult{}, b.unavailable(ctx, "history", err)
	}
	for i := range r.Publications {
		r.Publications[i].Channel = channel
	}
	return r, nil
}

func (b *Broker) history(ctx context.Context, subj string, since *broker.Position, limit, size int) (broker.HistoryResult, error) {
	top, ok, err := b.lastAcked(ctx, subj)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	if !ok { // nothing was ever published, or all of it is gone
		return broker.HistoryResult{Complete: since == nil || *since == broker.Position{}}, nil
	}
	r := broker.HistoryResult{Position: top.pos, Complete: true}
	want := uint64(1) // the first offset wanted
	if since != nil {
		pos := *since
		if pos == (broker.Position{}) { // asked before the stream existed: from its start
			pos.Epoch = top.pos.Epoch
		}
		if pos.Epoch != top.pos.Epoch || pos.Offset > top.pos.Offset {
			r.Complete = false
			return r, nil
		}
		if pos.Offset == top.pos.Offset {
			return r, nil
		}
		want = pos.Offset + 1
	}
	if kept := uint64(size); top.pos.Offset-want+1 > kept { // before the oldest the channel keeps
		if since != nil {
			r.Complete = false
		}
		if kept == 0 {
			return r, nil
		}
		want = top.pos.Offset - kept + 1
	}
	first, ok, err := b.next(ctx, subj, 0)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	if !ok || first.pos.Epoch != top.pos.Epoch || first.pos.Offset > top.pos.Offset {
		first = top // expired since, or a stream older than this broker's headers: the top only
	}
	if want < first.pos.Offset {
		if since != nil {
			r.Complete = false // some publications after since are gone
		}
		want = first.pos.Offset
	}
	count := top.pos.Offset - want + 1
	if limit > 0 && count > uint64(limit) {
		if since != nil {
			r.More = true // the rest follows from the last one returned
		} else {
			want += count - uint64(limit) // the latest limit
		}
		count = uint64(limit)
	}
	from, err := b.seek(ctx, subj, first, top, want)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	got, err := b.batch(ctx, subj, from.seq, int(count+want-from.pos.Offset))
	if err != nil {
		return broker.HistoryResult{}, err
	}
	if got, err = b.reach(ctx, subj, got, from.seq, top, want+count-1); err != nil {
		return broker.HistoryResult{}, err
	}
	r.Publications = make([]broker.Publication, 0, count)
	for _, s := range got {
		if s.pos.Epoch != top.pos.Epoch || s.pos.Offset < want {
			continue
		}
		if s.pos.Offset >= want+count {
			break
		}
		if len(r.Publications) == 0 && s.pos.Offset > want && since != nil {
			r.Complete = false // expired while we read
		}
		r.Publications = append(r.Publications, broker.Publication{Epoch: s.pos.Epoch, Offset: s.pos.Offset, Data: s.data})
	}
	return r, nil
}

// seek returns a stored message of the subject at or shortly before offset want (within
// scanSpan), between lo and hi, two of its messages with lo.pos.Offset <= want <= hi.pos.Offset.
// Offsets grow with stream sequences, so it interpolates the sequence from the two it knows and
// probes with a direct get of the next message from there, narrowing [lo, hi]; after a few
// guesses it bisects, so that a stream where the channel's messages are unevenly spread costs
// O(log n) probes.
func (b *Broker) seek(ctx context.Context, subj string, lo, hi stored, want uint64) (stored, error) {
	maxSeq := hi.seq // the wanted message's sequence is at most this
	for probes := 0; want-lo.pos.Offset > scanSpan; probes++ {
		if hi.pos.Offset == want {
			return hi, nil
		}
		var guess uint64
		if probes < 4 {
			span := float64(hi.seq - lo.seq)
			frac := float64(want-lo.pos.Offset) / float64(hi.pos.Offset-lo.pos.Offset)
			guess = lo.seq + uint64(span*frac)
		} else {
			guess = lo.seq + (maxSeq-lo.seq)/2
		}
		guess = min(max(guess, lo.seq+1), maxSeq)
		s, ok, err := b.next(ctx, subj, guess)
		if err != nil {
			return stored{}, err
		}
		switch {
		case !ok || s.pos.Epoch != lo.pos.Epoch || s.seq > hi.seq:
			return lo, nil // changed under us: read on from lo
		case s.pos.Offset == want:
			return s, nil
		case s.pos.Offset < want:
			lo = s
		default: // nothing of the subject in [guess, s.seq): the wanted one is before guess
			hi, maxSeq = s, guess-1
			if maxSeq <= lo.seq {
				return lo, nil
			}
		}
	}
	return lo, nil
}

// reach completes got, the subject's messages from stream sequence seq on as a replica returned
// them, up to offset last of top's epoch: a lagging replica may not hold the latest yet, and
// what it lacks is read from the stream's leader, one message at a time (rarely more than a
// few, the replica being a moment behind).
func (b *Broker) reach(ctx context.Context, subj string, got []stored, seq uint64, top stored, last uint64) ([]stored, error) {
	for {
		if n := len(got); n > 0 {
			s := got[n-1]
			if s.seq >= top.seq || s.pos.Epoch == top.pos.Epoch && s.pos.Offset >= last {
				return got, nil
			}
			seq = s.seq + 1
		}
		s, ok, err := b.nextFromLeader(ctx, subj, seq)
		if err != nil {
			return nil, err
		}
		if !ok { // expired or removed since the top was read
			return got, nil
		}
		got = append(got, s)
	}
}
