package nats

// msgQueueLen bounds the publications received and not yet dispatched, all channels together.
const msgQueueLen = 1 << 14

// subState is this node's subscription to one channel.
type subState struct{}

func (s *subState) drop() {}

func (b *Broker) reconnected() {}
