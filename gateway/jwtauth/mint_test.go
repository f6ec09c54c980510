package jwtauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// TestMintRefuses: Mint will not sign with a key that does not fit its Alg, a weak key, or
// claims a Verifier would refuse for their shape.
func TestMintRefuses(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ok := alice()
	for name, c := range map[string]struct {
		s      jwtauth.Signer
		claims jwtauth.Claims
		reason string
	}{
		"alg none":        {jwtauth.Signer{Alg: "none", Key: secret}, ok, "Alg must be"},
		"HS256 string":    {jwtauth.Signer{Alg: jwtauth.HS256, Key: string(secret)}, ok, "[]byte"},
		"short secret":    {jwtauth.Signer{Alg: jwtauth.HS256, Key: []byte("short")}, ok, "at least 32"},
		"RS256 EC key":    {jwtauth.Signer{Alg: jwtauth.RS256, Key: ecKeys()[0]}, ok, "*rsa.PrivateKey"},
		"RSA 1024":        {jwtauth.Signer{Alg: jwtauth.RS256, Key: small}, ok, "at least 2048"},
		"ES256 P-384":     {jwtauth.Signer{Alg: jwtauth.ES256, Key: p384}, ok, "only P-256"},
		"EdDSA short key": {jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0][:10]}, ok, "ed25519"},
		"EdDSA RSA key":   {jwtauth.Signer{Alg: jwtauth.EdDSA, Key: rsaKeys()[0]}, ok, "ed25519"},
		"info list":       {jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, jwtauth.Claims{User: "a", Info: json.RawMessage(`[1]`)}, "info"},
		"info too big":    {jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, jwtauth.Claims{User: "a", Info: json.RawMessage(`{"a":"` + strings.Repeat("x", 1100) + `"}`)}, "info"},
		"info not JSON":   {jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, jwtauth.Claims{User: "a", Info: json.RawMessage(`{oops`)}, "info"},
		"bad channel":     {jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, jwtauth.Claims{User: "a", Channels: []string{"a b"}}, "channels[0]"},
		"control in user": {jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, jwtauth.Claims{User: "a\x00"}, "control"},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := c.s.Mint(c.claims)
			if err == nil || !strings.Contains(err.Error(), c.reason) || !strings.HasPrefix(err.Error(), "jwtauth: mint") {
				t.Fatalf("Mint = %q, %v; want an error saying %q", tok, err, c.reason)
			}
		})
	}
}

// TestMintHeader: Mint writes alg and kid, and nothing the Claims did not ask for.
func TestMintHeader(t *testing.T) {
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "k1"}, jwtauth.Claims{User: "bob"})
	parts := strings.Split(tok, ".")
	var h map[string]any
	var c map[string]any
	hb, _ := b64.DecodeString(parts[0])
	cb, _ := b64.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		t.Fatalf("token does not decode: %s", tok)
	}
	if h["alg"] != "ES256" || h["kid"] != "k1" || len(c) != 1 || c["sub"] != "bob" {
		t.Fatalf("header %v, claims %v", h, c)
	}
}
