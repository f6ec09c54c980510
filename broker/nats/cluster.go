package nats

import (
	"fmt"
	"sync"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// fromHeader names the node that sent a cluster message.
const fromHeader = "Wsgate-From"

// Send implements broker.Cluster: a core NATS publication on <prefix>.x.<token(topic)>, at most
// once, to the nodes listening then. It fails with broker.ErrUnavailable while disconnected.
func (b *Broker) Send(topic string, msg []byte) error {
	if len(topic) > maxNameLen {
		return fmt.Errorf("broker/nats: topic of %d bytes, more than %d", len(topic), maxNameLen)
	}
	if err := b.connected(); err != nil {
		return b.unavailable(nil, "send", err)
	}
	m := &natsgo.Msg{Subject: b.x + subjectToken(topic), Header: natsgo.Header{fromHeader: []string{b.node}}, Data: msg}
	if err := b.nc.PublishMsg(m); err != nil {
		return b.unavailable(nil, "send", err)
	}
	return nil
}

// listener is one Listen: its subscription and the function it calls.
type listener struct {
	sub      *natsgo.Subscription
	mu       sync.Mutex // held while fn runs, so that cancel waits for a call in flight
	canceled bool
	fn       func(from string, msg []byte)
}

// cancel drops the subscription and waits for a call of fn in flight; fn is not called after.
func (l *listener) cancel() {
	_ = l.sub.Unsubscribe()
	l.mu.Lock()
	l.canceled = true
	l.mu.Unlock()
}

// Listen implements broker.Cluster with a core subscription on the topic's subject; messages
// from this node are skipped. fn is never called once cancel (or Close) has returned. Listening
// costs one goroutine (nats.go's, per subscription) until then.
func (b *Broker) Listen(topic string, fn func(from string, msg []byte)) (cancel func(), err error) {
	if len(topic) > maxNameLen {
		return nil, fmt.Errorf("broker/nats: topic of %d bytes, more than %d", len(topic), maxNameLen)
	}
	l := &listener{fn: fn}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("broker/nats: listen: %w", broker.ErrClosed)
	}
	// nats.go calls the handler from the subscription's own goroutine, one message at a time.
	l.sub, err = b.nc.Subscribe(b.x+subjectToken(topic), func(m *natsgo.Msg) {
		from := m.Header.Get(fromHeader)
		if from == b.node {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.canceled {
			l.fn(from, m.Data) // m.Data is a copy nats.go made for this message
		}
	})
	if err != nil {
		return nil, b.unavailable(nil, "listen", err)
	}
	b.listens[l] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			_, mine := b.listens[l]
			delete(b.listens, l)
			b.mu.Unlock()
			if mine { // else Close cancelled it
				l.cancel()
			}
		})
	}, nil
}
