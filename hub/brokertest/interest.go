package brokertest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Interest wraps a Broker and checks that its user keeps the interest contract of broker.Broker:
// per channel, Subscribe and Unsubscribe are never called concurrently, and Unsubscribe only
// follows a successful Subscribe. A broker that tracks interest (NATS) goes silent or leaks when
// the contract is broken, so a hub is tested against this wrapper.
//
// Delay and Fail widen the windows in which a hub could break the contract.
type Interest struct {
	broker.Broker
	// Delay is slept inside every Subscribe and Unsubscribe call.
	Delay time.Duration
	// Fail, when set, decides whether a Subscribe fails (without reaching the broker).
	Fail func(channel string) error

	mu         sync.Mutex
	busy       map[string]bool
	subscribed map[string]bool
	violations []string
}

// NewInterest wraps b.
func NewInterest(b broker.Broker) *Interest {
	return &Interest{Broker: b, busy: map[string]bool{}, subscribed: map[string]bool{}}
}

func (w *Interest) enter(op, channel string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy[channel] {
		w.violations = append(w.violations, fmt.Sprintf("%s(%q) while another interest call on it is in flight", op, channel))
	}
	w.busy[channel] = true
}

func (w *Interest) leave(channel string, subscribed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy[channel] = false
	w.subscribed[channel] = subscribed
}

// Subscribe implements broker.Broker.
func (w *Interest) Subscribe(ctx context.Context, channel string) error {
	w.enter("Subscribe", channel)
	w.mu.Lock()
	was := w.subscribed[channel]
	if was {
		w.violations = append(w.violations, fmt.Sprintf("Subscribe(%q) while already subscribed", channel))
	}
	w.mu.Unlock()
	time.Sleep(w.Delay)
	var err error
	if w.Fail != nil {
		err = w.Fail(channel)
	}
	if err == nil {
		err = w.Broker.Subscribe(ctx, channel)
	}
	w.leave(channel, was || err == nil)
	return err
}

// Unsubscribe implements broker.Broker.
func (w *Interest) Unsubscribe(ctx context.Context, channel string) error {
	w.enter("Unsubscribe", channel)
	w.mu.Lock()
	if !w.subscribed[channel] {
		w.violations = append(w.violations, fmt.Sprintf("Unsubscribe(%q) without a Subscribe", channel))
	}
	w.mu.Unlock()
	time.Sleep(w.Delay)
	err := w.Broker.Unsubscribe(ctx, channel)
	w.leave(channel, err != nil)
	return err
}

// Subscribed reports whether the broker holds this node's interest in channel now.
func (w *Interest) Subscribed(channel string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.subscribed[channel]
}

// Violations returns every breach of the contract seen so far.
func (w *Interest) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.violations...)
}
