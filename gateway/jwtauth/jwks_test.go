package jwtauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// jwkOf encodes a public key as a JWK with kid.
func jwkOf(pub any, kid string) map[string]any {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256",
			"x": b64.EncodeToString(raw[1:33]), "y": b64.EncodeToString(raw[33:])}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA", "x": b64.EncodeToString(k)}
	}
	panic(fmt.Sprintf("jwkOf %T", pub))
}

// jwksServer is an identity provider's key endpoint that counts its requests and serves
// whatever set the test puts in it.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	body []byte
	code int
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{code: http.StatusOK}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, code := s.body, s.code
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	body, _ := json.Marshal(map[string]any{"keys": keys})
	s.setBody(http.StatusOK, body)
}

func (s *jwksServer) setBody(code int, body []byte) {
	s.mu.Lock()
	s.body, s.code = body, code
	s.mu.Unlock()
}

// jwksVerifier is a Verifier on srv with a clock the test moves.
func jwksVerifier(t *testing.T, srv *jwksServer, cfg jwtauth.Config) (*jwtauth.Verifier, *fakeClock) {
	cfg.JWKSURL = srv.URL
	v := newVerifier(t, cfg)
	clock := &fakeClock{t: time.Now()}
	jwtauth.SetJWKSClock(v, clock.now)
	return v, clock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestJWKSVerify: keys of each asymmetric kind from a JWKS verify their tokens, the first
// token waiting for the first fetch; the set is fetched once for all of them.
func TestJWKSVerify(t *testing.T) {
	srv := newJWKSServer(t, jwkOf(&rsaKeys()[0].PublicKey, "r"), jwkOf(&ecKeys()[0].PublicKey, "e"), jwkOf(edKeys()[0].Public(), "d"))
	v, _ := jwksVerifier(t, srv, jwtauth.Config{})
	for _, s := range []jwtauth.Signer{
		{Alg: jwtauth.RS256, Key: rsaKeys()[0], KID: "r"},
		{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "e"},
		{Alg: jwtauth.EdDSA, Key: edKeys()[0], KID: "d"},
		{Alg: jwtauth.EdDSA, Key: edKeys()[0]}, // no kid: the set's only EdDSA key
	} {
		if _, err := v.Verify(ctx, mint(t, s, alice())); err != nil {
			t.Fatalf("%s kid %q: %v", s.Alg, s.KID, err)
		}
	}
	// A key used under another key's kid, an alg the kid's key is not for, and HS256 (a JWKS
	// never supplies an HMAC secret) all fail.
	for _, s := range []jwtauth.Signer{
		{Alg: jwtauth.ES256, Key: ecKeys()[1], KID: "e"},
		{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "r"},
		{Alg: jwtauth.HS256, Key: secret, KID: "r"},
	} {
		tok := mint(t, s, alice())
		_, err := v.Verify(ctx, tok)
		wantErr(t, err, jwtauth.ErrInvalid, "", tok)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}

// TestJWKSOverTLS: the https path, with the client the Config gives; and the default client
// refuses a redirect that would downgrade the fetch to plain http.
func TestJWKSOverTLS(t *testing.T) {
	keys, _ := json.Marshal(map[string]any{"keys": []any{jwkOf(&ecKeys()[0].PublicKey, "e")}})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(keys) }))
	t.Cleanup(srv.Close)
	v := newVerifier(t, jwtauth.Config{JWKSURL: srv.URL + "/jwks", HTTPClient: srv.Client()})
	if _, err := v.Verify(ctx, mint(t, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "e"}, alice())); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://idp.example.com/jwks", http.StatusFound)
	}))
	t.Cleanup(moved.Close)
	w := newVerifier(t, jwtauth.Config{JWKSURL: moved.URL})
	if err := w.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("Refresh through a downgrading redirect = %v", err)
	}
}

// TestJWKSNoKidSeveralKeys: a token without kid is not tried against every key of a set that
// holds several of its alg.
func TestJWKSNoKidSeveralKeys(t *testing.T) {
	srv := newJWKSServer(t, jwkOf(edKeys()[0].Public(), "d0"), jwkOf(edKeys()[1].Public(), "d1"))
	v, _ := jwksVerifier(t, srv, jwtauth.Config{})
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0]}, alice())
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "no EdDSA key", tok)
}

// TestJWKSRotation: a token signed with a new key verifies as soon as the set has it (the
// unknown kid triggers a fetch once JWKSMinRefetch has passed), and a removed key stops
// verifying at the next periodic refresh.
func TestJWKSRotation(t *testing.T) {
	old, next := edKeys()[0], edKeys()[1]
	srv := newJWKSServer(t, jwkOf(old.Public(), "2026-01"))
	v, clock := jwksVerifier(t, srv, jwtauth.Config{JWKSRefresh: time.Second, JWKSMinRefetch: time.Minute})
	oldTok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: old, KID: "2026-01"}, alice())
	newTok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: next, KID: "2026-02"}, alice())
	if _, err := v.Verify(ctx, oldTok); err != nil {
		t.Fatalf("old key: %v", err)
	}

	srv.set(jwkOf(old.Public(), "2026-01"), jwkOf(next.Public(), "2026-02"))
	clock.add(time.Minute)
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}

	srv.set(jwkOf(next.Public(), "2026-02"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(ctx, oldTok)
		if errors.Is(err, jwtauth.ErrInvalid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed key still verifies after 10 s (refresh 1 s): %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Fatalf("new key after the old one left: %v", err)
	}
}

// TestJWKSUnknownKidRateLimit: tokens naming random kids, many and concurrent, cost the JWKS
// server one request per JWKSMinRefetch, not one per token.
func TestJWKSUnknownKidRateLimit(t *testing.T) {
	srv := newJWKSServer(t, jwkOf(edKeys()[0].Public(), "good"))
	v, clock := jwksVerifier(t, srv, jwtauth.Config{})
	if _, err := v.Verify(ctx, mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0], KID: "good"}, alice())); err != nil {
		t.Fatal(err)
	}
	attack := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				kid := rand.Text()
				tok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[1], KID: kid}, alice())
				_, err := v.Verify(ctx, tok)
				if !errors.Is(err, jwtauth.ErrInvalid) || !strings.Contains(err.Error(), "no EdDSA key") {
					t.Errorf("random kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	attack(200) // within the interval of the first fetch: no request at all
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("after 200 random kids: %d fetches, want 1 (the first)", n)
	}
	clock.add(jwtauth.DefaultJWKSMinRefetch)
	attack(200) // one fetch, shared by whoever was waiting for it
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("after the interval and 200 more: %d fetches, want 2", n)
	}
	clock.add(jwtauth.DefaultJWKSMinRefetch / 2)
	attack(50)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("half an interval later: %d fetches, want 2", n)
	}
	// An explicit Refresh is not rate limited.
	if err := v.Refresh(ctx); err != nil || srv.hits.Load() != 3 {
		t.Fatalf("Refresh = %v, fetches %d", err, srv.hits.Load())
	}
}

// TestJWKSBadSets: a set that fails (status, size, shape) is reported by Refresh and leaves the
// last good set in use; keys this package does not take are skipped.
func TestJWKSBadSets(t *testing.T) {
	good := jwkOf(edKeys()[0].Public(), "good")
	srv := newJWKSServer(t, good)
	v, _ := jwksVerifier(t, srv, jwtauth.Config{})
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0], KID: "good"}, alice())
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	many := make([]map[string]any, jwtauth.MaxJWKSKeys+1)
	for i := range many {
		many[i] = good
	}
	manyBody, _ := json.Marshal(map[string]any{"keys": many})
	for name, c := range map[string]struct {
		code   int
		body   []byte
		reason string
	}{
		"status 500":    {500, []byte(`{"keys":[]}`), "500"},
		"over 1 MiB":    {200, []byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwtauth.MaxJWKSBytes) + `"}`), "bytes"},
		"not JSON":      {200, []byte(`<html>`), "not a key set"},
		"no keys":       {200, []byte(`{"kids":[]}`), "no keys member"},
		"too many keys": {200, manyBody, "more than 100"},
	} {
		t.Run(name, func(t *testing.T) {
			srv.setBody(c.code, c.body)
			if err := v.Refresh(ctx); err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Refresh = %v; want an error saying %q", err, c.reason)
			}
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("last good set lost: %v", err)
			}
		})
	}
}

// TestJWKSSkippedKeys: symmetric, weak, other-curve, encryption and broken keys in a set are
// skipped; the usable ones stay.
func TestJWKSSkippedKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	enc := jwkOf(&ecKeys()[1].PublicKey, "enc")
	enc["use"] = "enc"
	offCurve := jwkOf(&ecKeys()[2].PublicKey, "off")
	offCurve["y"] = offCurve["x"]
	wrongAlg := jwkOf(&rsaKeys()[1].PublicKey, "ps")
	wrongAlg["alg"] = "PS256"
	body, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "oct", "kid": "hmac", "k": b64.EncodeToString(secret)},
		jwkOf(&small.PublicKey, "small"),
		map[string]any{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
		enc, offCurve, wrongAlg,
		map[string]any{"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": b64.EncodeToString(make([]byte, 32))},
		map[string]any{"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
		"not an object",
		jwkOf(&rsaKeys()[0].PublicKey, "r"),
		jwkOf(&ecKeys()[0].PublicKey, "e"),
	}})
	algs, kids, skipped, err := jwtauth.ParseJWKS(body)
	if err != nil || skipped != 9 || strings.Join(kids, ",") != "r,e" || strings.Join(algs, ",") != "RS256,ES256" {
		t.Fatalf("ParseJWKS = %v %v skipped %d, %v", algs, kids, skipped, err)
	}
}

// TestJWKSUnavailable: with the JWKS down, tokens are refused with a reason saying so, and the
// refusals do not hammer it.
func TestJWKSUnavailable(t *testing.T) {
	srv := newJWKSServer(t)
	srv.setBody(http.StatusServiceUnavailable, nil)
	v, _ := jwksVerifier(t, srv, jwtauth.Config{})
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "e"}, alice())
	_, err := v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "key set unavailable", tok)
	for range 20 {
		v.Verify(ctx, tok)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

// TestJWKSTimeout: a JWKS server that never answers costs one fetch of JWKSTimeout, and a
// token's context bounds its own wait.
func TestJWKSTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	v := newVerifier(t, jwtauth.Config{JWKSURL: srv.URL, JWKSTimeout: time.Second})
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0], KID: "e"}, alice())

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(short, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "", tok)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Verify waited %v past its context", d)
	}
	start = time.Now()
	err = v.Refresh(ctx)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Refresh = %v after %v; want a timeout after about 1 s", err, time.Since(start))
	}
}

// TestJWKSStops: the refresher stops on Close and on the end of New's context (goleak in
// TestMain checks that nothing is left), and Refresh after it says so.
func TestJWKSStops(t *testing.T) {
	srv := newJWKSServer(t, jwkOf(edKeys()[0].Public(), "d"))
	v, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("Refresh after Close succeeded")
	}

	cctx, cancel := context.WithCancel(ctx)
	w, err := jwtauth.New(cctx, jwtauth.Config{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0], KID: "d"}, alice())
	if _, err := w.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs after the context ended")
	}
	if _, err := w.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify after Close, on the last set: %v", err)
	}
}
