package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks connection tokens (Verify) and channel tokens (VerifyChannel) against one
// Config. It is safe for concurrent use. With a JWKSURL it owns a goroutine that refreshes the
// key set: Close, or the end of New's context, stops it.
type Verifier struct {
	cfg     Config
	allowed map[string]bool
	static  []key
	jwks    *jwks // nil without JWKSURL
	conn    *jwt.Parser
	channel *jwt.Parser

	closeOnce sync.Once
}

// New checks c and returns a Verifier for it. With a JWKSURL, the first fetch starts at once in
// the background (tokens that arrive before it ends wait for it, within their context), and a
// goroutine refreshes the set until ctx ends or Close is called.
func New(ctx context.Context, c Config) (*Verifier, error) {
	c, err := c.resolve()
	if err != nil {
		return nil, err
	}
	static, err := parseStatic(c.PublicKeys)
	if err != nil {
		return nil, err
	}
	allowed, err := algorithms(c, static)
	if err != nil {
		return nil, err
	}
	v := &Verifier{cfg: c, allowed: allowed, static: static}
	v.conn = v.parser(!c.OptionalExp)
	v.channel = v.parser(!c.OptionalChannelExp)
	if c.JWKSURL != "" {
		v.jwks = newJWKS(c)
		v.jwks.start(ctx)
	}
	return v, nil
}

func (v *Verifier) parser(expRequired bool) *jwt.Parser {
	opts := []jwt.ParserOption{jwt.WithLeeway(v.cfg.Leeway), jwt.WithIssuedAt(), jwt.WithStrictDecoding()}
	if expRequired {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	return jwt.NewParser(opts...)
}

// Close stops the JWKS refresh, if any, and waits for it. Verify keeps working on the last
// fetched set. Close is idempotent and returns nil.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		if v.jwks != nil {
			v.jwks.stop()
		}
	})
	return nil
}

// Refresh fetches the JWKS now regardless of JWKSMinRefetch, or joins the fetch already in
// flight, and returns that fetch's error: for a startup check (`config check`), or after a key
// rotation the operator knows of. Without a JWKSURL it returns nil.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.jwks == nil {
		return nil
	}
	return v.jwks.refetch(ctx, true)
}

// Verify checks a connection token and returns its claims: signed by a configured key with an
// allowed alg, within exp/nbf/iat (with the leeway), for the configured audience and issuer,
// with a sub, an info object and channels within their bounds, and no channel claim. ctx bounds
// the wait for a JWKS fetch when the token names a kid not yet known. Errors wrap ErrExpired,
// ErrNotYetValid or ErrInvalid.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	w, err := v.parse(ctx, v.conn, token)
	if err != nil {
		return nil, err
	}
	if w.Channel != "" {
		return nil, invalid("a channel token is not a connection token")
	}
	if err := checkUser(w.Subject, false); err != nil {
		return nil, err
	}
	info, err := checkInfo(w.Info)
	if err != nil {
		return nil, err
	}
	if err := checkChannels(w.Channels, v.cfg.MaxChannels); err != nil {
		return nil, err
	}
	c := w.claims()
	c.Info = info
	return c, nil
}

// VerifyChannel checks a channel token: signed and timed as Verify requires (exp required unless
// OptionalChannelExp), whose channel claim is channel and whose sub is user. A token for another
// channel, or for another user, is ErrInvalid. An empty sub is accepted only with
// AnonymousChannels, and then only for user "" (an anonymous connection): a token minted for
// anonymous use never serves a signed-in user, nor the reverse.
func (v *Verifier) VerifyChannel(ctx context.Context, token, user, channel string) error {
	w, err := v.parse(ctx, v.channel, token)
	if err != nil {
		return err
	}
	if w.Channel == "" {
		return invalid("no channel claim: not a channel token")
	}
	if w.Channel != channel {
		return invalid("the token is for another channel")
	}
	if err := checkUser(w.Subject, v.cfg.AnonymousChannels); err != nil {
		return err
	}
	if w.Subject != user {
		return invalid("the token is for another user")
	}
	return nil
}

// parse checks the token's size, alg, key, signature and registered claims.
func (v *Verifier) parse(ctx context.Context, p *jwt.Parser, token string) (*wireClaims, error) {
	if token == "" {
		return nil, invalid("no token")
	}
	if len(token) > MaxTokenLen {
		return nil, invalid("longer than %d bytes", MaxTokenLen)
	}
	var w wireClaims
	var keyErr error
	_, err := p.ParseWithClaims(token, &w, func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(ctx, t)
		keyErr = err
		return k, err
	})
	switch {
	case err == nil:
		return &w, nil
	case keyErr != nil:
		return nil, keyErr
	}
	return nil, classify(err, &w, v.cfg)
}

// keyFor picks the keys that may have signed t: the secret for HS256 (and nothing else ever
// for it), for the others the keys bound to that alg, by kid. A kid no key has triggers one
// JWKS fetch, spaced by JWKSMinRefetch; keys configured without a KID then serve as a fallback.
// A token without kid tries every configured key of its alg, and a JWKS key only when the set
// has a single one of that alg: never a search through a large set for each token.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !v.allowed[alg] {
		return nil, invalid("alg %s not allowed", short(alg))
	}
	if alg == HS256 {
		if len(v.cfg.Secret) == 0 { // unreachable: HS256 is allowed only with a Secret
			return nil, invalid("no HS256 secret")
		}
		return v.cfg.Secret, nil
	}
	kid := ""
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, invalid("kid is not a string")
		}
		kid = s
	}
	var found []any
	var fetchErr error
	if kid == "" {
		for _, k := range v.static {
			if k.alg == alg {
				found = append(found, k.pub)
			}
		}
		if v.jwks != nil {
			k, ok := v.jwks.only(alg)
			if !ok && len(found) == 0 {
				fetchErr = v.jwks.refetch(ctx, false)
				k, ok = v.jwks.only(alg)
			}
			if ok {
				found = append(found, k)
			}
		}
	} else {
		for _, k := range v.static {
			if k.alg == alg && k.kid == kid {
				found = append(found, k.pub)
			}
		}
		if v.jwks != nil {
			found = v.jwks.lookup(alg, kid, found)
			if len(found) == 0 {
				fetchErr = v.jwks.refetch(ctx, false)
				found = v.jwks.lookup(alg, kid, found)
			}
		}
		if len(found) == 0 {
			for _, k := range v.static {
				if k.alg == alg && k.kid == "" {
					found = append(found, k.pub)
				}
			}
		}
	}
	switch len(found) {
	case 0:
		if fetchErr != nil && !errors.Is(fetchErr, errRateLimited) {
			// The cause (an address, a status) is the operator's, in Config.Logger; the client
			// learns only that the set could not be had.
			return nil, invalid("no %s key for kid %s (key set unavailable)", alg, short(kid))
		}
		return nil, invalid("no %s key for kid %s", alg, short(kid))
	case 1:
		return found[0], nil
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(found))}
	for i, k := range found {
		set.Keys[i] = k
	}
	return set, nil
}

// malformed says which part of the token did not decode, from the parser's messages (stable
// within jwt/v5) and never from the text it quotes.
func malformed(err error) error {
	msg := err.Error()
	var typeErr *json.UnmarshalTypeError
	switch {
	case strings.Contains(msg, "number of segments"):
		return invalid("malformed: not three dot-separated segments")
	case strings.Contains(msg, "decode header"):
		return invalid("malformed: the header is not a base64url-encoded JSON object")
	case strings.Contains(msg, "base64 decode claim"):
		return invalid("malformed: the claims are not base64url")
	case errors.As(err, &typeErr) && typeErr.Field != "":
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:] // "RegisteredClaims.sub"
		return invalid("malformed: claim %s has the wrong type", short(field))
	case strings.Contains(msg, "decode claim"):
		return invalid("malformed: the claims are not a JSON object of the expected types")
	case strings.Contains(msg, "decode signature"):
		return invalid("malformed: the signature is not base64url")
	}
	return invalid("malformed")
}

// classify turns the parser's error into one of the three sentinels, with a reason of our own
// words (the parser's may quote what it failed to decode). The reasons that no fresh token of
// the same kind would cure come first: a token both expired and for another audience is invalid.
func classify(err error, w *wireClaims, c Config) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return malformed(err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("alg missing or unknown")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature")
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return invalid("unverifiable")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("wrong audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("wrong issuer")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case w.ExpiresAt == nil:
			return invalid("exp required")
		case c.Audience != "" && len(w.Audience) == 0:
			return invalid("aud required")
		case c.Issuer != "" && w.Issuer == "":
			return invalid("iss required")
		}
		return invalid("a required claim is missing")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is %s", ErrNotYetValid, w.NotBefore.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: iat is %s, in the future", ErrNotYetValid, w.IssuedAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp was %s", ErrExpired, w.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return invalid("claims")
}
