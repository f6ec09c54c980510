package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// The security list, end to end: tokens made by golang-jwt directly (not by the
// gateway's own signer) reach a real server over a real socket, and each one that must not get
// in is answered with its documented code and close code.
func TestHostileTokens(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemFile := filepath.Join(t.TempDir(), "rsa.pem")
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(pemFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	cfg := namespacesConfig()
	cfg.Auth.JWT.PublicKeyFiles = []string{pemFile}
	cfg.Auth.JWT.Audience = "chat-app"
	cfg.Auth.JWT.Issuer = "https://auth.example"
	s := start(t, cfg, nil)

	now := time.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "aud": "chat-app", "iss": "https://auth.example"}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hs := func(c jwt.MapClaims, key string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rs := func(c jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := jwt.NewWithClaims(jwt.SigningMethodES256, good()).SignedString(otherEC)
	// alg confusion: HS256 keyed with the RSA public key the server trusts.
	confused := hs(good(), string(pubPEM))
	// A channel token (it names a channel) is no identity.
	channelGrant := hs(func() jwt.MapClaims { c := good(); c["channel"] = "private:a"; return c }(), secret)
	// A good signature over a payload swapped for another user's.
	tampered := func() string {
		parts := strings.Split(hs(good(), secret), ".")
		body, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, with("sub", "mallory")).SigningString()
		return strings.Split(body, ".")[0] + "." + strings.Split(body, ".")[1] + "." + parts[2]
	}()

	for _, tc := range []struct {
		name  string
		tok   string
		code  protocol.Code
		close int
	}{
		{"alg none", none, protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"wrong HMAC key", hs(good(), "another-secret-0123456789abcdef-012345"), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"ES256 by an unknown key", es, protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"HS256 keyed with the RSA public key", confused, protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"tampered payload", tampered, protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"expired", hs(with("exp", now.Add(-time.Hour).Unix()), secret), protocol.CodeTokenExpired, protocol.CloseTokenExpired},
		{"not yet valid", hs(with("nbf", now.Add(time.Hour).Unix()), secret), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"wrong audience", hs(with("aud", "other-app"), secret), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"no audience", hs(with("aud", nil), secret), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"wrong issuer", rs(with("iss", "https://evil.example")), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"no subject", hs(with("sub", nil), secret), protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"a channel token as identity", channelGrant, protocol.CodeUnauthorized, protocol.CloseUnauthorized},
	} {
		c := dialV1(t, s.url, nil)
		c.fails(map[string]any{"op": "connect", "token": tc.tok}, tc.code)
		if code := closedWith(t, c.ws); code != tc.close {
			t.Errorf("%s: closed with %d, want %d", tc.name, code, tc.close)
		}
	}

	// The same tokens in raw mode are refused before the upgrade, 401.
	for _, tok := range []string{none, confused, tampered} {
		ws, resp, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + tok}})
		if err == nil {
			ws.Close()
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("raw upgrade with a forged token: %v, want 401", err)
		}
	}

	// The good ones get in, by either key; alice's channel token does not open private:a to bob.
	for _, tok := range []string{hs(good(), secret), rs(good())} {
		c := dialV1(t, s.url, nil)
		c.ok(map[string]any{"op": "connect", "token": tok})
	}
	bob := dialV1(t, s.url, nil)
	bob.ok(map[string]any{"op": "connect", "token": hs(with("sub", "bob"), secret)})
	bob.fails(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:a")}, protocol.CodeForbidden)
	bob.fails(map[string]any{"op": "subscribe", "channel": "private:b", "token": channelToken(t, "bob", "private:a")}, protocol.CodeForbidden)
	bob.fails(map[string]any{"op": "publish", "channel": "#alice", "data": 1}, protocol.CodeForbidden)
	bob.fails(map[string]any{"op": "presence", "channel": "dm:#alice,carol"}, protocol.CodeForbidden)
	bob.ok(map[string]any{"op": "subscribe", "channel": "dm:#alice,bob"})
}
