package jwtauth

import (
	"errors"
	"fmt"
)

// The three answers a refused token gets. Every error of Verify and VerifyChannel wraps exactly
// one of them, with a short reason after it ("jwtauth: invalid token: bad signature"), so that
// the gateway maps them to protocol codes with errors.Is: ErrExpired to 110 (get a fresh token),
// the others to 109. A reason never quotes the token, and quotes at most a few bytes of what it
// carries (an alg, a kid), cut short.
var (
	// ErrExpired: the token was genuine but its exp has passed (beyond the leeway).
	ErrExpired = errors.New("jwtauth: token expired")
	// ErrNotYetValid: the token was genuine but its nbf, or its iat, is still in the future
	// (beyond the leeway): a clock is off, or the token was minted for later.
	ErrNotYetValid = errors.New("jwtauth: token not yet valid")
	// ErrInvalid: everything else: malformed, too large, an alg the configuration does not allow,
	// an unknown key, a bad signature, a wrong audience or issuer, a missing or oversized claim,
	// a channel token for another channel or user.
	ErrInvalid = errors.New("jwtauth: invalid token")
)

// invalid wraps ErrInvalid with a reason. The reason must not carry the token.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// short quotes an attacker's string for an error, cut to 32 bytes: enough to recognise an alg or
// a kid, never enough to replay anything.
func short(s string) string {
	const n = 32
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}
