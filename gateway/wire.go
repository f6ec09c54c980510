package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wsgate/wsgate/gateway/jwtauth"
	"github.com/wsgate/wsgate/hub"
)

// newVerifier builds the token verifier of cfg.Auth.JWT (gateway/jwtauth), reading its key
// files; nil when no key is configured.
func newVerifier(ctx context.Context, cfg *Config, hc *http.Client, log *slog.Logger) (verifier, error) {
	j := &cfg.Auth.JWT
	if !j.Configured() {
		return nil, nil
	}
	secret, err := j.Secret()
	if err != nil {
		return nil, err
	}
	jc := jwtauth.Config{Secret: secret, JWKSURL: j.JWKSURL, Audience: j.Audience, Issuer: j.Issuer, HTTPClient: hc, Logger: log}
	for i, f := range j.PublicKeyFiles {
		k, err := jwtauth.LoadPEMFile(f, "")
		if err != nil {
			return nil, fmt.Errorf("gateway: auth.jwt.public_key_files[%d]: %w", i, err)
		}
		jc.PublicKeys = append(jc.PublicKeys, k)
	}
	v, err := jwtauth.New(ctx, jc)
	if err != nil {
		return nil, fmt.Errorf("gateway: auth.jwt: %w", err)
	}
	return jwtVerifier{v}, nil
}

// jwtVerifier is the gateway's verifier over gateway/jwtauth.
type jwtVerifier struct{ v *jwtauth.Verifier }

func (j jwtVerifier) Verify(ctx context.Context, token string) (*hub.Identity, error) {
	c, err := j.v.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	return &hub.Identity{User: c.User, Info: c.Info, ExpiresAt: c.ExpiresAt, Channels: c.Channels}, nil
}

func (j jwtVerifier) VerifyChannel(ctx context.Context, token, user, channel string) error {
	return j.v.VerifyChannel(ctx, token, user, channel)
}

func (j jwtVerifier) Expired(err error) bool { return errors.Is(err, jwtauth.ErrExpired) }

func (j jwtVerifier) Close() error { return j.v.Close() }
