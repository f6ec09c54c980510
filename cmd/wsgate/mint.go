package main

import (
	"encoding/json"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// mintToken signs a connection token (HS256) for user, valid for ttl from now.
func mintToken(secret []byte, user string, ttl time.Duration, info json.RawMessage, channels []string) (string, error) {
	now := time.Now()
	return jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}.Mint(jwtauth.Claims{User: user, Info: info, Channels: channels,
		IssuedAt: now, ExpiresAt: now.Add(ttl)})
}

// mintChannelToken signs a channel token (HS256) for user and channel, valid for ttl from now.
func mintChannelToken(secret []byte, user, channel string, ttl time.Duration) (string, error) {
	now := time.Now()
	return jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}.Mint(jwtauth.Claims{User: user, Channel: channel,
		IssuedAt: now, ExpiresAt: now.Add(ttl)})
}
