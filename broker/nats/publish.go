package nats

// pubChan is what this node knows of a channel's top, for its next publication.
type pubChan struct{}
