package memory

import (
	"context"

	"github.com/wsgate/wsgate/broker"
)

var _ broker.HistoryRemover = (*Broker)(nil)

// RemoveHistory implements broker.HistoryRemover: it forgets the channel's history and starts a
// new epoch at once, under the stream's lock, so that a publication made meanwhile is either
// before the removal (and removed) or the first of the new epoch. A stream this node subscribes
// to stays, with its new epoch at offset 0 (as a stream subscribed before its first
// publication); any other is freed. Reading never creates a stream, and neither does this.
func (b *Broker) RemoveHistory(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := b.locked(channel, false)
	if err != nil || s == nil {
		return err
	}
	var freed int64
	for s.n > 0 {
		freed += s.dropOldest()
	}
	freed += s.fit()
	b.reserve(-freed)
	s.epoch, s.offset = newEpoch(), 0
	watched := s.interest
	s.mu.Unlock()
	if !watched {
		b.free(s)
	}
	return nil
}
