package gateway

import (
	"cmp"
	"context"
	"net/http"
	"strconv"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
)

// verifier is what the gateway asks of gateway/jwtauth: connection tokens and channel tokens.
type verifier interface {
	Verify(ctx context.Context, token string) (*hub.Identity, error)
	VerifyChannel(ctx context.Context, token, user, channel string) error
	// Expired reports whether err refused a token only for its age: get a fresh one.
	Expired(err error) bool
	Close() error
}

// newBackend builds the backend calls of cfg (gateway/proxy); nil when none is configured.
func newBackend(cfg *Config, hc *http.Client, tr proxy.Tracer) (*proxy.Proxy, error) {
	b := &cfg.Backend
	if cfg.Auth.ConnectURL == "" && b.SubscribeURL == "" && b.PublishURL == "" && b.RPCURL == "" {
		return nil, nil
	}
	ep := func(url string) proxy.Endpoint {
		return proxy.Endpoint{URL: url, Timeout: b.Timeout, Retries: b.Retries}
	}
	p, err := proxy.New(proxy.Config{
		Connect:   ep(cfg.Auth.ConnectURL),
		Refresh:   ep(cfg.Auth.RefreshURL),
		Subscribe: ep(b.SubscribeURL),
		Publish:   ep(b.PublishURL),
		RPC:       proxy.Endpoint{URL: b.RPCURL, Timeout: b.Timeout, Retries: cmp.Or(b.RPCRetries, -1)},
		Client:    hc,
		Headers:   secretHeader(b.Secret),
		Tracer:    tr,
	})
	if err != nil {
		return nil, errorf("backend: %w", err)
	}
	return p, nil
}

// clientOf describes a live connection for a backend call; id is its identity, nil before
// connect.
func clientOf(c *wsgate.Conn, id *hub.Identity) proxy.Client {
	return proxy.ClientOf(c, strconv.FormatUint(c.ID(), 10), id)
}

// rawClient describes an upgrade request not yet upgraded (Admit's connect call).
func rawClient(r *http.Request) proxy.Client {
	return proxy.Client{Transport: "raw", Remote: r.RemoteAddr, Header: r.Header}
}

// secretHeader is the header that carries backend.secret; nil without one.
func secretHeader(secret string) http.Header {
	if secret == "" {
		return nil
	}
	return http.Header{SecretHeader: {secret}}
}
