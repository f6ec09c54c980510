package jwtauth_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

var ctx = context.Background()

// TestVerifyEachAlgorithm: a token minted with each algorithm verifies against its public key,
// and every claim comes back as minted.
func TestVerifyEachAlgorithm(t *testing.T) {
	for alg, k := range signers(t, 0) {
		t.Run(alg, func(t *testing.T) {
			k.cfg.Audience, k.cfg.Issuer = "wsgate", "backend"
			v := newVerifier(t, k.cfg)
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			tok := mint(t, k.s, jwtauth.Claims{
				User: "alice", ExpiresAt: exp, IssuedAt: time.Now(), Issuer: "backend",
				Audience: []string{"other", "wsgate"}, Info: json.RawMessage(`{ "name" : "Alice" }`),
				Channels: []string{"news", "#alice"}, ID: "j1",
			})
			c, err := v.Verify(ctx, tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.User != "alice" || !c.ExpiresAt.Equal(exp) || string(c.Info) != `{"name":"Alice"}` ||
				!slices.Equal(c.Channels, []string{"news", "#alice"}) || c.Issuer != "backend" || c.ID != "j1" ||
				!slices.Contains(c.Audience, "wsgate") || c.IssuedAt.IsZero() || c.Channel != "" {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

// TestAlgNone: an unsigned token is refused whatever the spelling of none, and whatever keys
// the verifier has.
func TestAlgNone(t *testing.T) {
	v := newVerifier(t, signers(t, 0)[jwtauth.HS256].cfg)
	for _, alg := range []string{"none", "None", "NONE", "nOnE", ""} {
		h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
		c, _ := json.Marshal(hsClaims())
		unsigned := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
		for _, tok := range []string{unsigned + ".", unsigned + "." + b64.EncodeToString([]byte("x"))} {
			_, err := v.Verify(ctx, tok)
			wantErr(t, err, jwtauth.ErrInvalid, "", tok)
		}
	}
	h, _ := json.Marshal(map[string]any{"typ": "JWT"}) // no alg at all
	tok := b64.EncodeToString(h) + "." + b64.EncodeToString([]byte(`{"sub":"alice"}`)) + "."
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "alg", tok)
}

// TestWrongKey: a token signed with another key of the right kind fails its signature.
func TestWrongKey(t *testing.T) {
	mine, theirs := signers(t, 0), signers(t, 1)
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			v := newVerifier(t, mine[alg].cfg)
			tok := mint(t, theirs[alg].s, alice())
			_, err := v.Verify(ctx, tok)
			wantErr(t, err, jwtauth.ErrInvalid, "bad signature", tok)
		})
	}
}

// TestTamperedClaims: changing one claim of a genuine token breaks its signature.
func TestTamperedClaims(t *testing.T) {
	k := signers(t, 0)[jwtauth.ES256]
	v := newVerifier(t, k.cfg)
	parts := strings.Split(mint(t, k.s, alice()), ".")
	c := hsClaims()
	c["sub"] = "admin"
	body, _ := json.Marshal(c)
	tok := parts[0] + "." + b64.EncodeToString(body) + "." + parts[2]
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "bad signature", tok)
}

// TestAlgConfusion: an HS256 token whose "secret" is the verifier's RSA public key (the PEM, or
// its DER) never verifies: HS256 is not allowed without a Secret, and with one it is checked
// against the Secret alone. Nor does a token's alg move a key to another algorithm.
func TestAlgConfusion(t *testing.T) {
	pemBytes := pemOf(t, &rsaKeys()[0].PublicKey)
	rsaOnly := jwtauth.Config{PublicKeys: []jwtauth.PublicKey{{PEM: pemBytes}}}
	withSecret := rsaOnly
	withSecret.Secret = secret
	der, err := x509.MarshalPKIXPublicKey(&rsaKeys()[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range [][]byte{pemBytes, der} {
		tok := rawHS256(map[string]any{"alg": "HS256", "typ": "JWT"}, hsClaims(), key)
		_, err := newVerifier(t, rsaOnly).Verify(ctx, tok)
		wantErr(t, err, jwtauth.ErrInvalid, "alg \"HS256\" not allowed", tok)
		_, err = newVerifier(t, withSecret).Verify(ctx, tok)
		wantErr(t, err, jwtauth.ErrInvalid, "bad signature", tok)
	}
	// An RS256 signature presented as ES256 and as EdDSA, to a verifier that has the RSA key.
	parts := strings.Split(mint(t, jwtauth.Signer{Alg: jwtauth.RS256, Key: rsaKeys()[0]}, alice()), ".")
	all := jwtauth.Config{PublicKeys: []jwtauth.PublicKey{{PEM: pemBytes}, {PEM: pemOf(t, &ecKeys()[0].PublicKey)}, {PEM: pemOf(t, edKeys()[0].Public())}}}
	for _, alg := range []string{"ES256", "EdDSA", "PS256", "RS512"} {
		h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
		tok := b64.EncodeToString(h) + "." + parts[1] + "." + parts[2]
		_, err := newVerifier(t, all).Verify(ctx, tok)
		wantErr(t, err, jwtauth.ErrInvalid, "", tok)
	}
}

// TestAlgorithmsRestrict: Config.Algorithms narrows what the keys would allow.
func TestAlgorithmsRestrict(t *testing.T) {
	cfg := jwtauth.Config{Secret: secret, PublicKeys: []jwtauth.PublicKey{{PEM: pemOf(t, edKeys()[0].Public())}}, Algorithms: []string{jwtauth.EdDSA}}
	v := newVerifier(t, cfg)
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, alice())
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "not allowed", tok)
	if _, err := v.Verify(ctx, mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0]}, alice())); err != nil {
		t.Fatalf("EdDSA: %v", err)
	}
}

// TestTimes: exp in the past, nbf and iat in the future, each beyond the leeway, and within it.
func TestTimes(t *testing.T) {
	s := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}
	v := newVerifier(t, jwtauth.Config{Secret: secret, Leeway: 10 * time.Second})
	now := time.Now()
	for _, c := range []struct {
		name   string
		claims jwtauth.Claims
		want   error
	}{
		{"expired", jwtauth.Claims{User: "a", ExpiresAt: now.Add(-time.Minute)}, jwtauth.ErrExpired},
		{"nbf future", jwtauth.Claims{User: "a", ExpiresAt: now.Add(time.Hour), NotBefore: now.Add(time.Minute)}, jwtauth.ErrNotYetValid},
		{"iat future", jwtauth.Claims{User: "a", ExpiresAt: now.Add(time.Hour), IssuedAt: now.Add(time.Minute)}, jwtauth.ErrNotYetValid},
		{"expired within leeway", jwtauth.Claims{User: "a", ExpiresAt: now.Add(-3 * time.Second)}, nil},
		{"nbf within leeway", jwtauth.Claims{User: "a", ExpiresAt: now.Add(time.Hour), NotBefore: now.Add(3 * time.Second)}, nil},
		{"no exp", jwtauth.Claims{User: "a"}, jwtauth.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := mint(t, s, c.claims)
			_, err := v.Verify(ctx, tok)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantErr(t, err, c.want, "", tok)
		})
	}
	// With OptionalExp, a token without exp is an identity that never lapses.
	opt := newVerifier(t, jwtauth.Config{Secret: secret, OptionalExp: true})
	if c, err := opt.Verify(ctx, mint(t, s, jwtauth.Claims{User: "a"})); err != nil || !c.ExpiresAt.IsZero() {
		t.Fatalf("OptionalExp: %v, %+v", err, c)
	}
}

// TestExpiredAndInvalid: a token both expired and for another audience is invalid, not expired:
// a fresh token of the same kind would not get in either.
func TestExpiredAndInvalid(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret, Audience: "wsgate"})
	c := alice()
	c.ExpiresAt, c.Audience = time.Now().Add(-time.Hour), []string{"elsewhere"}
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, c)
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "wrong audience", tok)
}

// TestAudienceIssuer: aud and iss must match when configured, and be present.
func TestAudienceIssuer(t *testing.T) {
	s := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}
	v := newVerifier(t, jwtauth.Config{Secret: secret, Audience: "wsgate", Issuer: "backend"})
	for _, c := range []struct {
		name   string
		aud    []string
		iss    string
		reason string
	}{
		{"ok", []string{"wsgate"}, "backend", ""},
		{"ok among several", []string{"api", "wsgate"}, "backend", ""},
		{"wrong audience", []string{"api"}, "backend", "wrong audience"},
		{"no audience", nil, "backend", "aud required"},
		{"wrong issuer", []string{"wsgate"}, "evil", "wrong issuer"},
		{"no issuer", []string{"wsgate"}, "", "iss required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := alice()
			cl.Audience, cl.Issuer = c.aud, c.iss
			tok := mint(t, s, cl)
			_, err := v.Verify(ctx, tok)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantErr(t, err, jwtauth.ErrInvalid, c.reason, tok)
		})
	}
}

// TestClaimBounds: every claim a peer controls has a bound, and a token beyond one is refused
// with a reason, not truncated.
func TestClaimBounds(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret, MaxChannels: 4})
	hdr := map[string]any{"alg": "HS256", "typ": "JWT"}
	with := func(k string, val any) map[string]any {
		c := hsClaims()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	bigInfo := map[string]string{"name": strings.Repeat("x", jwtauth.MaxInfoLen)}
	for _, c := range []struct {
		name   string
		claims map[string]any
		reason string
	}{
		{"no sub", with("sub", nil), "sub required"},
		{"empty sub", with("sub", ""), "sub required"},
		{"long sub", with("sub", strings.Repeat("a", jwtauth.MaxUserLen+1)), "sub longer"},
		{"control in sub", with("sub", "alice\nadmin"), "control character"},
		{"info not an object", with("info", []int{1, 2}), "info must be a JSON object"},
		{"info a string", with("info", "Alice"), "info must be a JSON object"},
		{"info too big", with("info", bigInfo), "info longer"},
		{"too many channels", with("channels", []string{"a", "b", "c", "d", "e"}), "more than 4 channels"},
		{"bad channel name", with("channels", []string{"ok", "no spaces"}), "channels[1]"},
		{"empty channel name", with("channels", []string{""}), "channels[0]"},
		{"channels not a list", with("channels", "news"), "malformed"},
		{"exp a string", with("exp", "tomorrow"), "malformed"},
		{"sub a number", with("sub", 42), "malformed"},
		{"channel claim", with("channel", "news"), "channel token is not a connection token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := rawHS256(hdr, c.claims, secret)
			_, err := v.Verify(ctx, tok)
			wantErr(t, err, jwtauth.ErrInvalid, c.reason, tok)
		})
	}
	// At the bounds, all is accepted.
	okInfo := `{"n":"` + strings.Repeat("x", jwtauth.MaxInfoLen-8) + `"}`
	c := with("info", json.RawMessage(okInfo))
	c["sub"] = strings.Repeat("a", jwtauth.MaxUserLen)
	c["channels"] = []string{"a", "b", "c", "d"}
	if _, err := v.Verify(ctx, rawHS256(hdr, c, secret)); err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
}

// TestOversizedToken: a token over MaxTokenLen is refused before it is decoded, even when
// genuine.
func TestOversizedToken(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret})
	c := hsClaims()
	c["pad"] = strings.Repeat("p", jwtauth.MaxTokenLen)
	tok := rawHS256(map[string]any{"alg": "HS256"}, c, secret)
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "longer than", tok)
	if _, err := (jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}).Mint(jwtauth.Claims{User: "a", Channels: slices.Repeat([]string{strings.Repeat("c", 255)}, 64)}); err == nil {
		t.Fatal("Mint made a token over MaxTokenLen")
	}
}

// TestMalformed: broken tokens get ErrInvalid with a reason, never a panic.
func TestMalformed(t *testing.T) {
	v := newVerifier(t, jwtauth.Config{Secret: secret})
	good := rawHS256(map[string]any{"alg": "HS256"}, hsClaims(), secret)
	p := strings.Split(good, ".")
	hdr := func(s string) string { return b64.EncodeToString([]byte(s)) }
	for name, tok := range map[string]string{
		"empty":               "",
		"one segment":         p[0],
		"two segments":        p[0] + "." + p[1],
		"four segments":       good + "." + p[2],
		"dots only":           "..",
		"header not base64":   "!!!." + p[1] + "." + p[2],
		"claims not base64":   p[0] + ".%%%." + p[2],
		"signature not b64":   p[0] + "." + p[1] + ".***",
		"padded segments":     p[0] + "=." + p[1] + "." + p[2],
		"header not JSON":     hdr("alg=HS256") + "." + p[1] + "." + p[2],
		"header a list":       hdr(`["HS256"]`) + "." + p[1] + "." + p[2],
		"claims not JSON":     p[0] + "." + hdr("sub=alice") + "." + p[2],
		"claims a list":       p[0] + "." + hdr(`[1]`) + "." + p[2],
		"kid a number":        rawHS256(map[string]any{"alg": "ES256", "kid": 7}, hsClaims(), secret),
		"alg a number":        rawHS256(map[string]any{"alg": 256}, hsClaims(), secret),
		"unknown alg":         rawHS256(map[string]any{"alg": "HS999" + strings.Repeat("z", 100)}, hsClaims(), secret),
		"truncated signature": p[0] + "." + p[1] + "." + p[2][:10],
		"whitespace":          " " + good,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, tok)
			wantErr(t, err, jwtauth.ErrInvalid, "", tok)
			if len(err.Error()) > 200 {
				t.Fatalf("err of %d bytes: %q", len(err.Error()), err)
			}
		})
	}
}
