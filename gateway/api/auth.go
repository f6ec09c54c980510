package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// keyring holds the SHA-256 of each API key, never the keys. A presented key is hashed and
// compared with every one of them in constant time, so that the time of a refusal says nothing
// of the keys' lengths or of how much of a prefix matched.
type keyring [][sha256.Size]byte

func newKeyring(keys []string) (keyring, error) {
	var k keyring
	for i, key := range keys {
		if key == "" {
			return nil, fmt.Errorf("%w: Keys[%d] is empty", ErrOptions, i)
		}
		for j := 0; j < len(key); j++ {
			if key[j] <= ' ' || key[j] > '~' {
				return nil, fmt.Errorf("%w: Keys[%d] has a byte that is not printable ASCII at %d (a header cannot carry it)", ErrOptions, i, j)
			}
		}
		k = append(k, sha256.Sum256([]byte(key)))
	}
	return k, nil
}

func (k keyring) empty() bool { return len(k) == 0 }

// valid reports whether key is one of the ring's, comparing with every key whatever matches.
func (k keyring) valid(key string) bool {
	sum := sha256.Sum256([]byte(key))
	match := 0
	for i := range k {
		match |= subtle.ConstantTimeCompare(sum[:], k[i][:])
	}
	return match == 1
}

// The names under which a key is sometimes put in a URL; a request carrying one is told why that
// is refused (URLs end up in access logs and browser histories).
var urlKeyNames = []string{"apikey", "api_key", "api-key", "key", "token", "access_token"}

const (
	authScheme      = "apikey"
	wwwAuthenticate = `apikey realm="wsgate API"`
	howToSend       = `send "Authorization: apikey <key>" or "X-API-Key: <key>"`
)

// authenticate checks the request's key: nil when it is valid (or the API is insecure), else 401
// when none was sent in a header (with WWW-Authenticate), 400 when it was sent ambiguously, 403
// when it is not valid. The key itself is never repeated.
func (a *apiHandler) authenticate(r *http.Request) *httpError {
	if a.keys.empty() {
		return nil // Insecure, New saw to it
	}
	auths, xkeys := r.Header.Values("Authorization"), r.Header.Values("X-API-Key")
	if len(auths)+len(xkeys) > 1 {
		return errorf(http.StatusBadRequest, codeBadRequest, "more than one key sent: %s, once", howToSend)
	}
	var key string
	switch {
	case len(auths) == 1:
		scheme, k, _ := strings.Cut(strings.TrimSpace(auths[0]), " ")
		if !strings.EqualFold(scheme, authScheme) {
			// The scheme is not repeated: a key sent without one would be.
			e := errorf(http.StatusUnauthorized, codeUnauthorized, "Authorization scheme not accepted: %s", howToSend)
			e.header = http.Header{"Www-Authenticate": {wwwAuthenticate}}
			return e
		}
		key = strings.TrimSpace(k)
	case len(xkeys) == 1:
		key = strings.TrimSpace(xkeys[0])
	}
	if key == "" {
		msg := "API key missing: " + howToSend
		q := r.URL.Query()
		for _, n := range urlKeyNames {
			if q.Has(n) {
				msg = fmt.Sprintf("API key missing: a key in the URL (%q) is not accepted, URLs are logged; %s", n, howToSend)
				break
			}
		}
		e := errorf(http.StatusUnauthorized, codeUnauthorized, "%s", msg)
		e.header = http.Header{"Www-Authenticate": {wwwAuthenticate}}
		return e
	}
	if !a.keys.valid(key) {
		return errorf(http.StatusForbidden, codeForbidden, "API key not valid")
	}
	return nil
}
