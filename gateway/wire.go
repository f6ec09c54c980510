package gateway

import (
	"context"
	"net/http"
)

// newVerifier builds the token verifier of cfg.Auth.JWT; nil when no key is configured.
func newVerifier(ctx context.Context, cfg *Config, hc *http.Client) (verifier, error) {
	if !cfg.Auth.JWT.Configured() {
		return nil, nil
	}
	return nil, errorf("auth.jwt: not built yet")
}

// newBackend builds the backend calls of cfg; nil when none is configured.
func newBackend(cfg *Config, hc *http.Client) (backend, error) {
	b := &cfg.Backend
	if cfg.Auth.ConnectURL == "" && b.SubscribeURL == "" && b.PublishURL == "" && b.RPCURL == "" {
		return nil, nil
	}
	return nil, errorf("backend: not built yet")
}
