package jwtauth_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// FuzzVerify: whatever the token, Verify answers with claims within their bounds or an error
// wrapping one of the three sentinels that does not quote the token; it never panics. Seeds are
// genuine tokens of each algorithm and hand-made spoiled ones.
func FuzzVerify(f *testing.F) {
	ks := signers(f, 0)
	cfg := jwtauth.Config{Secret: ks[jwtauth.HS256].cfg.Secret, OptionalExp: true, MaxChannels: 8}
	for _, alg := range []string{jwtauth.RS256, jwtauth.ES256, jwtauth.EdDSA} {
		cfg.PublicKeys = append(cfg.PublicKeys, ks[alg].cfg.PublicKeys...)
	}
	v := newVerifier(f, cfg)
	for _, alg := range algs {
		c := alice()
		c.Info, c.Channels = json.RawMessage(`{"name":"Alice"}`), []string{"news"}
		f.Add(mint(f, ks[alg].s, c))
	}
	sec := ks[jwtauth.HS256].cfg.Secret
	f.Add(rawHS256(map[string]any{"alg": "none"}, hsClaims(), sec))
	f.Add(rawHS256(map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "info": []int{1}}, sec))
	f.Add(rawHS256(map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "exp": 1e300, "channels": []string{"a", ""}}, sec))
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(ctx, tok)
		if err != nil {
			if !errors.Is(err, jwtauth.ErrInvalid) && !errors.Is(err, jwtauth.ErrExpired) && !errors.Is(err, jwtauth.ErrNotYetValid) {
				t.Fatalf("err %v wraps no sentinel", err)
			}
			if len(tok) >= 24 && strings.Contains(err.Error(), tok) {
				t.Fatalf("err %q quotes the token", err)
			}
			return
		}
		if c.User == "" || len(c.User) > jwtauth.MaxUserLen || len(c.Info) > jwtauth.MaxInfoLen ||
			len(c.Channels) > 8 || c.Channel != "" || (!c.ExpiresAt.IsZero() && c.ExpiresAt.Before(time.Now().Add(-time.Minute))) {
			t.Fatalf("accepted out-of-bounds claims %+v", c)
		}
	})
}

// FuzzParseJWKS: whatever the key set, parsing never panics, and what it keeps is bounded.
func FuzzParseJWKS(f *testing.F) {
	set, _ := json.Marshal(map[string]any{"keys": []any{
		jwkOf(&rsaKeys()[0].PublicKey, "r"), jwkOf(&ecKeys()[0].PublicKey, "e"), jwkOf(edKeys()[0].Public(), "d"),
		map[string]any{"kty": "oct", "k": "c2VjcmV0"},
	}})
	f.Add(set)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		algs, _, _, err := jwtauth.ParseJWKS(body)
		if err == nil && len(algs) > jwtauth.MaxJWKSKeys {
			t.Fatalf("%d keys kept", len(algs))
		}
	})
}
