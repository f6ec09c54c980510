package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Signer mints tokens: `wsgate token`, the demo's token endpoint, tests, and any Go backend
// that wants the claims format right without reading doc.go twice.
type Signer struct {
	// Alg is HS256, RS256, ES256 or EdDSA.
	Alg string
	// Key matches Alg: the secret ([]byte, at least MinSecretLen bytes) for HS256,
	// *rsa.PrivateKey (at least MinRSABits) for RS256, *ecdsa.PrivateKey on P-256 for ES256,
	// ed25519.PrivateKey for EdDSA.
	Key any
	// KID, when set, goes into the header's kid, for verifiers that choose keys by it.
	KID string
}

// Mint signs c into a compact JWT. It refuses claims a Verifier would refuse for their shape (a
// sub, info or channels out of bounds; it does not require a sub or an exp, which depends on the
// token's use), and a key that does not match Alg. Nothing is added: set IssuedAt and ExpiresAt
// yourself.
func (s Signer) Mint(c Claims) (string, error) {
	method, err := s.method()
	if err != nil {
		return "", err
	}
	if c.User != "" {
		if err := checkUser(c.User, false); err != nil {
			return "", fmt.Errorf("jwtauth: mint: %w", err)
		}
	}
	if _, err := checkInfo(c.Info); err != nil {
		return "", fmt.Errorf("jwtauth: mint: %w", err)
	}
	if err := checkChannels(c.Channels, len(c.Channels)); err != nil {
		return "", fmt.Errorf("jwtauth: mint: %w", err)
	}
	t := jwt.NewWithClaims(method, c.wire())
	if s.KID != "" {
		t.Header["kid"] = s.KID
	}
	tok, err := t.SignedString(s.Key)
	if err != nil {
		return "", fmt.Errorf("jwtauth: mint: %w", err)
	}
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("jwtauth: mint: token of %d bytes, more than %d", len(tok), MaxTokenLen)
	}
	return tok, nil
}

// method checks that Key fits Alg and returns the signing method.
func (s Signer) method() (jwt.SigningMethod, error) {
	var pub any
	switch s.Alg {
	case HS256:
		k, ok := s.Key.([]byte)
		if !ok {
			return nil, fmt.Errorf("jwtauth: mint: HS256 wants a []byte secret, not %T", s.Key)
		}
		if len(k) < MinSecretLen {
			return nil, fmt.Errorf("jwtauth: mint: secret of %d bytes, at least %d", len(k), MinSecretLen)
		}
		return jwt.SigningMethodHS256, nil
	case RS256:
		k, ok := s.Key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("jwtauth: mint: RS256 wants *rsa.PrivateKey, not %T", s.Key)
		}
		pub = &k.PublicKey
	case ES256:
		k, ok := s.Key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("jwtauth: mint: ES256 wants *ecdsa.PrivateKey, not %T", s.Key)
		}
		pub = &k.PublicKey
	case EdDSA:
		k, ok := s.Key.(ed25519.PrivateKey)
		if !ok || len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("jwtauth: mint: EdDSA wants an ed25519.PrivateKey, not %T of that size", s.Key)
		}
		pub = k.Public()
	default:
		return nil, errors.New("jwtauth: mint: Alg must be HS256, RS256, ES256 or EdDSA")
	}
	if _, err := algOf(pub); err != nil {
		return nil, fmt.Errorf("jwtauth: mint: %w", err)
	}
	return jwt.GetSigningMethod(s.Alg), nil
}
