package main

import (
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// mint signs c (HS256) valid for ttl from now, with the aud and iss the configuration wants, so
// that the server takes it (wsgate token, the demo).
func mint(secret []byte, j *gateway.JWT, c jwtauth.Claims, ttl time.Duration) (string, error) {
	now := time.Now()
	c.IssuedAt, c.ExpiresAt = now, now.Add(ttl)
	if j.Audience != "" {
		c.Audience = []string{j.Audience}
	}
	c.Issuer = j.Issuer
	return jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}.Mint(c)
}
