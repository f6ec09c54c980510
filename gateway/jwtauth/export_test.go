package jwtauth

import "time"

// SetJWKSClock replaces the clock the JWKS rate limit reads, so that a test moves past
// JWKSMinRefetch without sleeping through it.
func SetJWKSClock(v *Verifier, now func() time.Time) {
	v.jwks.mu.Lock()
	defer v.jwks.mu.Unlock()
	v.jwks.now = now
}

// ParseJWKS exposes parseJWKS to the tests of the key-set format.
func ParseJWKS(body []byte) (algs, kids []string, skipped int, err error) {
	keys, skipped, err := parseJWKS(body)
	for _, k := range keys {
		algs, kids = append(algs, k.alg), append(kids, k.kid)
	}
	return algs, kids, skipped, err
}
