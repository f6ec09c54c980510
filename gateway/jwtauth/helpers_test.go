package jwtauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// Real keys, generated once per test binary (RSA generation is slow under -race).
var (
	rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
		ks := make([]*rsa.PrivateKey, 3)
		var wg sync.WaitGroup
		for i := range ks {
			wg.Go(func() {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					panic(err)
				}
				ks[i] = k
			})
		}
		wg.Wait()
		return ks
	})
	ecKeys = sync.OnceValue(func() []*ecdsa.PrivateKey {
		ks := make([]*ecdsa.PrivateKey, 3)
		for i := range ks {
			ks[i], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		return ks
	})
	edKeys = sync.OnceValue(func() []ed25519.PrivateKey {
		ks := make([]ed25519.PrivateKey, 3)
		for i := range ks {
			_, ks[i], _ = ed25519.GenerateKey(rand.Reader)
		}
		return ks
	})
	secret  = []byte("0123456789abcdef0123456789abcdef")
	secret2 = []byte("fedcba9876543210fedcba9876543210")
)

// pemOf encodes a public key as a PKIX PUBLIC KEY block.
func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// keyed is a Signer and the Config that verifies its tokens with no other key.
type keyed struct {
	s   jwtauth.Signer
	cfg jwtauth.Config
}

// signers returns one keyed per algorithm, made of key i of each kind.
func signers(t testing.TB, i int) map[string]keyed {
	t.Helper()
	sec := []byte(strings.Repeat(string(rune('a'+i)), 32))
	out := map[string]keyed{
		jwtauth.HS256: {jwtauth.Signer{Alg: jwtauth.HS256, Key: sec}, jwtauth.Config{Secret: sec}},
	}
	for alg, priv := range map[string]crypto.Signer{
		jwtauth.RS256: rsaKeys()[i], jwtauth.ES256: ecKeys()[i], jwtauth.EdDSA: edKeys()[i],
	} {
		out[alg] = keyed{jwtauth.Signer{Alg: alg, Key: priv}, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{{PEM: pemOf(t, priv.Public())}}}}
	}
	return out
}

var algs = []string{jwtauth.HS256, jwtauth.RS256, jwtauth.ES256, jwtauth.EdDSA}

// newVerifier builds a Verifier closed at the end of the test.
func newVerifier(t testing.TB, cfg jwtauth.Config) *jwtauth.Verifier {
	t.Helper()
	v, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// mint signs c or fails the test.
func mint(t testing.TB, s jwtauth.Signer, c jwtauth.Claims) string {
	t.Helper()
	tok, err := s.Mint(c)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

// alice is a valid connection token's claims.
func alice() jwtauth.Claims {
	now := time.Now()
	return jwtauth.Claims{User: "alice", ExpiresAt: now.Add(time.Hour), IssuedAt: now}
}

var b64 = base64.RawURLEncoding

// rawHS256 builds a token by hand, from any header and claims JSON, signed with HMAC-SHA256
// over key: what an attacker (or a sloppy backend) can produce that Mint would refuse.
func rawHS256(header, claims any, key []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil))
}

// hsClaims is a valid connection token's claims as a map, to be spoiled by the test.
func hsClaims() map[string]any {
	return map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
}

// wantErr checks that err wraps want and says reason, and that it quotes no part of the token.
func wantErr(t testing.TB, err, want error, reason, token string) {
	t.Helper()
	t.Log(err)
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if reason != "" && !strings.Contains(err.Error(), reason) {
		t.Fatalf("err = %q, want it to say %q", err, reason)
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 && strings.Contains(err.Error(), seg[:16]) {
			t.Fatalf("err = %q quotes the token", err)
		}
	}
}
