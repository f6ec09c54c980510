package nats

import (
	"context"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/broker"
)

var _ broker.Health = (*Broker)(nil)

// Ready implements broker.Health: the connection to NATS is up, and JetStream answers for the
// stream (which also says that the stream has a leader). It makes one request, bounded by ctx
// and Options.Timeout. It is not cached here: a caller on a public path (wsgate's /readyz and
// wsgate_ready) reuses one answer for about a second, and shares the call under way.
func (b *Broker) Ready(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return broker.ErrClosed
	}
	if st := b.nc.Status(); st != natsgo.CONNECTED {
		return fmt.Errorf("%w: NATS connection %s", broker.ErrUnavailable, st)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("%w: %v", broker.ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	if _, err := js.Stream(ctx, b.opts.Stream); err != nil {
		return fmt.Errorf("%w: JetStream stream %s: %v", broker.ErrUnavailable, b.opts.Stream, err)
	}
	return nil
}
