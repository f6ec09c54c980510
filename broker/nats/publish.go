package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// A Publish that finds the channel's top moved (another node published meanwhile) refreshes
// the top from the stream's leader and tries again, within the call's Timeout: contention is
// not unavailability. From the third try it first waits a random time up to 2^try ms (at
// most maxContendedWait), so that publishers on several nodes stop colliding; a fixed count of
// tries starved one of three nodes publishing to one channel (hub/clustertest).
const maxContendedWait = 32 * time.Millisecond

// chanCacheLen bounds the channels whose top this node remembers between publications. Beyond
// it an idle one is forgotten: its next publication here reads its top first (one more round
// trip).
const chanCacheLen = 1 << 14

// pubChan is what this node knows of a channel's top, for its next publication. Its lock is a
// 1-slot channel, so that a Publish waiting for another gives up with its context.
type pubChan struct {
	lock  chan struct{}
	subj  string  // the channel's store subject
	lim   *limits // the channel's history bounds
	users int     // Publishes holding or waiting for lock; under Broker.mu

	// Under lock:
	known bool
	seq   uint64 // stream sequence of the channel's last message (0: it has none)
	pos   broker.Position
}

// pubAck is JetStream's answer to a publication.
type pubAck struct {
	Stream    string    `json:"stream"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate"` // a Nats-Msg-Id seen within the window: Seq is the first's
	Error     *apiError `json:"error"`
}

// Publish implements broker.Broker. Publications to one channel are serialized on this node
// and made with the expected last sequence of the channel's subject, which the stream checks:
// two nodes that publish at once to a channel cannot both take the same offset, and the one
// refused reads the new top and tries again. The position is returned once the stream has
// acknowledged the publication; the stream's republication then delivers it to the nodes
// subscribed. With Discard old the stream never refuses for space: it drops the oldest
// publications, so Publish never fails with broker.ErrFull.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte) (broker.Position, error) {
	return b.publishID(ctx, channel, data, "")
}

// publishID is Publish, with a Nats-Msg-Id when msgID is set (PublishOnce).
func (b *Broker) publishID(ctx context.Context, channel string, data []byte, msgID string) (broker.Position, error) {
	if len(channel) > maxNameLen {
		return broker.Position{}, fmt.Errorf("broker/nats: channel of %d bytes, more than %d", len(channel), maxNameLen)
	}
	if err := ctx.Err(); err != nil {
		return broker.Position{}, err
	}
	c, err := b.acquire(channel)
	if err != nil {
		return broker.Position{}, err
	}
	defer b.release(channel, c)
	cctx, cancel := b.call(ctx)
	defer cancel()
	select {
	case c.lock <- struct{}{}:
	case <-cctx.Done():
		return broker.Position{}, b.unavailable(ctx, "publish: waiting for the channel's publications in flight", cctx.Err())
	}
	defer func() { <-c.lock }()
	pos, err := b.publish(cctx, c, data, msgID)
	if err != nil {
		c.known = false // the publication may be stored all the same: read the top next time
		return broker.Position{}, b.unavailable(ctx, "publish", err)
	}
	return pos, nil
}

// publish stores data after the channel's top c, holding c.lock. With a msgID the stream may
// find it a duplicate: the first publication's position is returned (dedup.go).
func (b *Broker) publish(ctx context.Context, c *pubChan, data []byte, msgID string) (broker.Position, error) {
	subj := c.subj
	for attempt := 1; ; attempt++ {
		if err := b.connected(); err != nil {
			return broker.Position{}, err
		}
		if !c.known {
			top, ok, err := b.lastFromLeader(ctx, subj)
			if err != nil {
				return broker.Position{}, err
			}
			c.seq, c.pos, c.known = top.seq, top.pos, true
			if !ok {
				c.seq, c.pos = 0, broker.Position{}
			}
		}
		next := broker.Position{Epoch: c.pos.Epoch, Offset: c.pos.Offset + 1}
		if c.seq == 0 { // the subject has no message: a new stream of the channel
			next = broker.Position{Epoch: randomID(6), Offset: 1}
		}
		m := &natsgo.Msg{Subject: subj, Data: data, Header: natsgo.Header{
			natsgo.ExpectedLastSubjSeqHdr: []string{strconv.FormatUint(c.seq, 10)},
			natsgo.ExpectedStreamHdr:      []string{b.opts.Stream},
			offsetHeader:                  []string{strconv.FormatUint(next.Offset, 10)},
			epochHeader:                   []string{next.Epoch},
		}}
		c.lim.headers(m.Header)
		if trace := broker.TraceFromContext(ctx); trace != "" {
			m.Header[traceHeader] = []string{trace}
		}
		if msgID != "" {
			m.Header[natsgo.MsgIdHdr] = []string{msgID}
		}
		resp, err := b.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return broker.Position{}, err
		}
		ack, err := parseAck(resp.Data)
		if err != nil {
			return broker.Position{}, err
		}
		if ack.Error == nil && ack.Duplicate {
			c.known = false // stored by another node, perhaps: read the top next time
			return b.original(ctx, ack.Seq)
		}
		if ack.Error == nil {
			c.seq, c.pos = ack.Seq, next
			return next, nil
		}
		c.known = false
		if !wrongLastSeq(ack.Error) && ack.Error.ErrCode != errCodeDupInFlight {
			if ack.Error.Code == 503 || ack.Error.ErrCode == errCodeNoStream {
				return broker.Position{}, fmt.Errorf("%w: %w", errNotConnected, ack.Error)
			}
			return broker.Position{}, ack.Error
		}
		if attempt > 2 { // others keep winning: let them finish
			wait := min(time.Millisecond<<min(attempt, 10), maxContendedWait)
			select {
			case <-time.After(rand.N(wait)):
			case <-ctx.Done():
				return broker.Position{}, fmt.Errorf("%w: the channel's top moved %d times: %w", errContended, attempt, ctx.Err())
			}
		}
	}
}

var errContended = errors.New("contended")

// errCodeDupInFlight is JetStream's answer, in a replicated stream, to a publication whose
// Nats-Msg-Id is a publication still being stored: try again, to learn the first's sequence.
const errCodeDupInFlight = 10158 // JSStreamDuplicateMessageConflict

// wrongLastSeq reports whether the stream refused a publication for its expected last sequence:
// retry once the channel's top is read again.
func wrongLastSeq(e *apiError) bool {
	return e.ErrCode == errCodeWrongLastSeq || e.ErrCode == errCodeWrongLastSeqConst
}

// parseAck reads JetStream's answer to a publication. The usual one, a success
// ({"stream":"WSGATE","seq":42}), is read without encoding/json, which costs the hot path a few
// allocations; anything else goes through it.
func parseAck(data []byte) (pubAck, error) {
	if !bytes.Contains(data, []byte(`"error"`)) && !bytes.Contains(data, []byte(`"duplicate"`)) {
		if _, rest, ok := bytes.Cut(data, []byte(`"seq":`)); ok {
			end := 0
			for end < len(rest) && '0' <= rest[end] && rest[end] <= '9' {
				end++
			}
			if seq, err := strconv.ParseUint(string(rest[:end]), 10, 64); err == nil && seq > 0 {
				return pubAck{Seq: seq}, nil
			}
		}
	}
	var ack pubAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("publication's acknowledgement: %w", err)
	}
	if ack.Error == nil && ack.Seq == 0 {
		return pubAck{}, fmt.Errorf("publication's acknowledgement without a sequence: %s", data)
	}
	return ack, nil
}

// acquire returns the channel's entry, counting this Publish as one of its users.
func (b *Broker) acquire(channel string) (*pubChan, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("broker/nats: publish: %w", broker.ErrClosed)
	}
	if !b.started {
		return nil, errors.New("broker/nats: publish before Start")
	}
	c := b.chans[channel]
	if c == nil {
		if len(b.chans) >= chanCacheLen {
			b.forgetIdle()
		}
		c = &pubChan{lock: make(chan struct{}, 1), subj: b.in + subjectToken(channel), lim: b.limitsOf(channel)}
		b.chans[channel] = c
	}
	c.users++
	return c, nil
}

// release ends a Publish's use of c.
func (b *Broker) release(channel string, c *pubChan) {
	b.mu.Lock()
	c.users--
	if c.users == 0 && !c.known && b.chans[channel] == c {
		delete(b.chans, channel) // nothing worth remembering
	}
	b.mu.Unlock()
}

// forgetIdle drops a few idle entries of b.chans (map order is random). Called with b.mu.
func (b *Broker) forgetIdle() {
	n := 0
	for ch, c := range b.chans {
		if c.users == 0 {
			delete(b.chans, ch)
			if n++; n == 4 {
				return
			}
		}
	}
}
