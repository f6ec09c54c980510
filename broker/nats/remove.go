package nats

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/broker"
)

var _ broker.HistoryRemover = (*Broker)(nil)

// purgeRequest and purgeResponse are the stream purge API's; see nats-server's
// JSApiStreamPurgeRequest.
type purgeRequest struct {
	Subject string `json:"filter"`
}

type purgeResponse struct {
	Success bool      `json:"success"`
	Purged  uint64    `json:"purged"`
	Error   *apiError `json:"error"`
}

// RemoveHistory implements broker.HistoryRemover: it purges the channel's subject from the
// stream, through its leader, which answers once the purge is applied. The channel then has no
// message, so its next publication starts a new epoch at offset 1, whichever node makes it:
// a publication in flight expects the subject's last sequence as it was, and the stream refuses
// it (the publisher reads the empty top and starts the new epoch). A publication the stream
// stored before the purge is removed with the rest, after its delivery. Subscriptions stay.
func (b *Broker) RemoveHistory(ctx context.Context, channel string) error {
	if len(channel) > maxNameLen {
		return fmt.Errorf("broker/nats: channel of %d bytes, more than %d", len(channel), maxNameLen)
	}
	if err := b.connected(); err != nil {
		return b.unavailable(ctx, "remove history", err)
	}
	cctx, cancel := b.call(ctx)
	defer cancel()
	body, _ := json.Marshal(purgeRequest{Subject: b.in + subjectToken(channel)})
	m, err := b.nc.RequestWithContext(cctx, "$JS.API.STREAM.PURGE."+b.opts.Stream, body)
	if err != nil {
		return b.unavailable(ctx, "remove history", err)
	}
	var r purgeResponse
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return fmt.Errorf("broker/nats: remove history: %w", err)
	}
	switch {
	case r.Error != nil && (r.Error.ErrCode == errCodeNoStream || r.Error.Code == 503):
		return b.unavailable(ctx, "remove history", fmt.Errorf("%w: %w", errNotConnected, r.Error))
	case r.Error != nil:
		return fmt.Errorf("broker/nats: remove history: %w", r.Error)
	case !r.Success:
		return fmt.Errorf("broker/nats: remove history: the stream answered %s", m.Data)
	}
	return nil
}
