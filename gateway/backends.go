package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// verifier is what the gateway asks of gateway/jwtauth: connection tokens and channel tokens.
type verifier interface {
	Verify(ctx context.Context, token string) (*hub.Identity, error)
	VerifyChannel(ctx context.Context, token, user, channel string) error
	// Expired reports whether err refused a token only for its age: get a fresh one.
	Expired(err error) bool
	Close() error
}

// backend is what the gateway asks of gateway/proxy. Its errors are what the hub's hooks
// answer with (a *protocol.Error, a *hub.Disconnect).
type backend interface {
	Connect(ctx context.Context, c client, token string) (*hub.Identity, error)
	Refresh(ctx context.Context, c client, token string) (*hub.Identity, error)
	Subscribe(ctx context.Context, c client, channel, token string) error
	Publish(ctx context.Context, c client, channel string, data json.RawMessage) (json.RawMessage, error)
	RPC(ctx context.Context, c client, method string, data json.RawMessage) (json.RawMessage, error)
	CloseIdleConnections()
}

// client is the connection a backend call is about.
type client struct {
	Name      string // its name in presence; "" before the upgrade
	Transport string // protocol.Subprotocol or "raw"
	Remote    string
	User      string
	Header    http.Header
}

// clientOf describes a live connection; id is its identity, nil before connect.
func clientOf(c *wsgate.Conn, id *hub.Identity) client {
	cl := client{Transport: "raw", Header: c.Header()}
	if c.Subprotocol() == protocol.Subprotocol {
		cl.Transport = protocol.Subprotocol
	}
	if a := c.RemoteAddr(); a != nil {
		cl.Remote = a.String()
	}
	if id != nil {
		cl.User = id.User
	}
	return cl
}

// rawClient describes an upgrade request not yet upgraded (Admit's connect call).
func rawClient(r *http.Request) client {
	return client{Transport: "raw", Remote: r.RemoteAddr, Header: r.Header}
}
