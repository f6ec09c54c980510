package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// jwks keeps the keys of a JSON Web Key Set, fetched by one goroutine (run, owned by the
// Verifier: started in New, stopped by Close or New's context). Verify reads the current set
// without a lock. A token naming a kid the set lacks asks for a fetch (refetch); fetches are
// coalesced (waiters share the one in flight) and spaced by minRefetch, so the JWKS server sees
// at most one request per minRefetch however many kids tokens invent, plus one per refresh.
// A failed fetch keeps the last good set.
type jwks struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	refresh    time.Duration
	minRefetch time.Duration
	now        func() time.Time // time.Now; tests move it

	keys atomic.Pointer[[]key]

	mu        sync.Mutex
	inflight  chan struct{} // closed when the fetch in flight ends; nil when none is
	lastFetch time.Time     // when the last fetch began
	lastErr   error         // of the last fetch
	log       *slog.Logger  // nil: fetch failures are not logged

	kick   chan struct{} // 1 slot: a refetch was asked for (inflight set)
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
}

func newJWKS(c Config) *jwks {
	j := &jwks{
		url: c.JWKSURL, client: c.HTTPClient, timeout: c.JWKSTimeout, log: c.Logger,
		refresh: c.JWKSRefresh, minRefetch: c.JWKSMinRefetch, now: time.Now,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	j.keys.Store(new([]key))
	// The first fetch is in flight from the start, so that tokens arriving before it ends wait
	// for it instead of asking for another.
	j.inflight = make(chan struct{})
	j.lastFetch = j.now()
	return j
}

// start runs the fetcher until ctx ends or stop is called.
func (j *jwks) start(ctx context.Context) {
	ctx, j.cancel = context.WithCancel(ctx)
	go j.run(ctx) // owner: the jwks; stop (Verifier.Close) cancels and waits on done
}

func (j *jwks) stop() {
	j.cancel()
	<-j.done
}

func (j *jwks) run(ctx context.Context) {
	defer close(j.done)
	t := time.NewTimer(0) // the first fetch (its inflight is already set)
	defer t.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !first {
				j.mu.Lock()
				j.beginLocked()
				j.mu.Unlock()
			}
			first = false
		case <-j.kick:
			j.mu.Lock()
			asked := j.inflight != nil
			j.mu.Unlock()
			if !asked { // served by a fetch that began meanwhile
				continue
			}
		}
		keys, err := j.fetch(ctx)
		j.mu.Lock()
		if err == nil {
			j.keys.Store(&keys)
		}
		failing := j.lastErr != nil
		j.lastErr = err
		close(j.inflight)
		j.inflight = nil
		j.mu.Unlock()
		if err != nil {
			t.Reset(j.minRefetch)
		} else {
			t.Reset(j.refresh)
		}
		if j.log != nil && (err != nil || failing) {
			if err != nil {
				j.log.Warn("jwtauth: JWKS fetch failed; the last good key set stays in use", "url", redacted(j.url), "err", err)
			} else {
				j.log.Info("jwtauth: JWKS fetched again", "url", redacted(j.url))
			}
		}
	}
}

// beginLocked marks a fetch as in flight, if none is, and returns its channel.
func (j *jwks) beginLocked() chan struct{} {
	if j.inflight == nil {
		j.inflight = make(chan struct{})
		j.lastFetch = j.now()
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return j.inflight
}

// errRateLimited: the key is unknown and the last fetch was too recent to ask for another.
var errRateLimited = errors.New("jwtauth: jwks fetched less than JWKSMinRefetch ago")

// errClosed: the fetcher has stopped (Close, or New's context ended); the last set stays.
var errClosed = errors.New("jwtauth: jwks refresh stopped (Verifier closed)")

// refetch asks for a fetch and waits for it: the one in flight if there is one, a new one if the
// last began at least minRefetch ago (or force), else it returns at once: the last fetch's
// error if it failed, errRateLimited if not.
func (j *jwks) refetch(ctx context.Context, force bool) error {
	select {
	case <-j.done:
		return errClosed
	default:
	}
	j.mu.Lock()
	if j.inflight == nil && !force && j.now().Sub(j.lastFetch) < j.minRefetch {
		err := j.lastErr // the set is unavailable: say why, rather than "too soon"
		j.mu.Unlock()
		if err == nil {
			err = errRateLimited
		}
		return err
	}
	ch := j.beginLocked()
	j.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-j.done:
		return errClosed
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastErr
}

// lookup returns the set's keys for alg with exactly this kid.
func (j *jwks) lookup(alg, kid string, into []any) []any {
	for _, k := range *j.keys.Load() {
		if k.alg == alg && k.kid == kid {
			into = append(into, k.pub)
		}
	}
	return into
}

// only returns the set's key for alg when it holds exactly one: what a token without kid may use.
func (j *jwks) only(alg string) (any, bool) {
	var found any
	n := 0
	for _, k := range *j.keys.Load() {
		if k.alg == alg {
			found, n = k.pub, n+1
		}
	}
	return found, n == 1
}

// fetch gets and parses the set: at most MaxJWKSBytes, within timeout.
func (j *jwks) fetch(ctx context.Context) ([]key, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without the URL, which may carry a credential
		}
		return nil, fmt.Errorf("jwtauth: jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwtauth: jwks: answered %s", resp.Status)
	}
	if resp.ContentLength > MaxJWKSBytes {
		return nil, fmt.Errorf("jwtauth: jwks: %d bytes, more than %d", resp.ContentLength, MaxJWKSBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwtauth: jwks: reading: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("jwtauth: jwks: more than %d bytes", MaxJWKSBytes)
	}
	keys, _, err := parseJWKS(body)
	return keys, err
}

// parseJWKS reads a key set. Keys this package cannot use (symmetric, other curves, RSA under
// MinRSABits, use other than sig, broken encodings) are skipped and counted, not fatal: a set
// also serving other consumers must not lock us out. A set that is not JSON, has no keys member
// or more than MaxJWKSKeys keys is an error.
func parseJWKS(body []byte) (keys []key, skipped int, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("jwtauth: jwks: not a key set: %w", err)
	}
	if set.Keys == nil {
		return nil, 0, errors.New("jwtauth: jwks: no keys member")
	}
	if len(set.Keys) > MaxJWKSKeys {
		return nil, 0, fmt.Errorf("jwtauth: jwks: %d keys, more than %d", len(set.Keys), MaxJWKSKeys)
	}
	for _, raw := range set.Keys {
		var k jwk
		if json.Unmarshal(raw, &k) != nil {
			skipped++
			continue
		}
		pub, alg, err := k.public()
		if err != nil {
			skipped++
			continue
		}
		keys = append(keys, key{kid: k.Kid, alg: alg, pub: pub})
	}
	return keys, skipped, nil
}

// jwk is one JSON Web Key (RFC 7517, 7518 section 6, 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (k jwk) public() (any, string, error) {
	if k.Use != "" && k.Use != "sig" {
		return nil, "", fmt.Errorf("use %q", k.Use)
	}
	var pub any
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, "", errors.New("RSA exponent size")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	case "EC":
		if k.Crv != "P-256" {
			return nil, "", fmt.Errorf("curve %q", k.Crv)
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, "", errors.New("P-256 coordinate size")
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", err
		}
		pub = p
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, "", fmt.Errorf("curve %q", k.Crv)
		}
		x, err := b64(k.X)
		if err != nil {
			return nil, "", err
		}
		pub = ed25519.PublicKey(x)
	default:
		return nil, "", fmt.Errorf("kty %q", k.Kty)
	}
	alg, err := algOf(pub)
	if err != nil {
		return nil, "", err
	}
	if k.Alg != "" && k.Alg != alg && !(alg == EdDSA && k.Alg == "Ed25519") {
		return nil, "", fmt.Errorf("alg %q", k.Alg)
	}
	return pub, alg, nil
}

// b64 decodes base64url, padded or not (RFC 7515 says unpadded; some servers pad).
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// redacted is u with any password replaced and its query dropped, for logs.
func redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.Fragment = "", ""
	return p.Redacted()
}
