package gateway

import "github.com/wsgate/wsgate/hub"

// clusterLink carries the user operations of the backend API to the other nodes.
type clusterLink struct {
	cancel func()
}

func (l *clusterLink) start(g *Gateway, h *hub.Hub) error { return nil }

func (l *clusterLink) close() {
	if l.cancel != nil {
		l.cancel()
	}
}
