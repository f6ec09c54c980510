package nats

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/wsgate/wsgate/broker"
)

var _ broker.Deduplicator = (*Broker)(nil)

// PublishOnce implements broker.Deduplicator with JetStream's deduplication: the publication
// carries a Nats-Msg-Id made of the channel and the key (the base64 of broker.DedupHash, so
// that any key is a safe header value and keys of different channels never meet), and the stream
// stores one publication per id within its duplicate window (Options.DedupWindow, default 2
// minutes, at most the longest HistoryTTL) — whichever node publishes, since the stream's
// leader checks. A duplicate is answered with the first's stream sequence; its position is read
// from the stream's leader (one more round trip), or is the zero Position when the first is no
// longer kept (RemoveHistory does not clear the stream's memory of ids). Publish's guarantees
// hold otherwise: a PublishOnce that failed with broker.ErrUnavailable may have been stored,
// and retrying it with its key within the window then returns that publication's position.
//
// Cost: every replica of the stream remembers each id for the window (an entry holding its
// 43-byte id and a few words), so what they hold grows with the rate of PublishOnce calls times
// the window, with no count bound of their own: offer PublishOnce to trusted callers (a backend),
// or bound its rate before it.
func (b *Broker) PublishOnce(ctx context.Context, channel string, data []byte, key string) (broker.Position, error) {
	sum, err := broker.DedupHash(channel, key)
	if err != nil {
		return broker.Position{}, fmt.Errorf("broker/nats: %w", err)
	}
	return b.publishID(ctx, channel, data, base64.RawURLEncoding.EncodeToString(sum[:]))
}

// original returns the position of the publication stored at stream sequence seq, which a
// duplicate's acknowledgement named: the zero Position when the stream no longer holds it.
func (b *Broker) original(ctx context.Context, seq uint64) (broker.Position, error) {
	s, ok, err := b.leaderGet(ctx, getRequest{Seq: seq})
	if err != nil || !ok {
		return broker.Position{}, err
	}
	return s.pos, nil
}
