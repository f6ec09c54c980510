package jwtauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Algorithm names, as in a token's alg header. Nothing else is ever accepted: not "none", not
// HS384/RS512/PS256 (never configured here, so never a way in).
const (
	HS256 = "HS256" // HMAC with SHA-256, from Config.Secret
	RS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256, keys of 2048 bits or more
	ES256 = "ES256" // ECDSA on P-256 with SHA-256
	EdDSA = "EdDSA" // Ed25519
)

// Defaults and bounds of Config, and the bounds every token is held to.
const (
	DefaultLeeway = 5 * time.Second // clock skew forgiven on exp, nbf and iat
	MaxLeeway     = 5 * time.Minute // a larger Leeway is a configuration error

	DefaultJWKSRefresh    = 15 * time.Minute // periodic JWKS refetch
	DefaultJWKSMinRefetch = time.Minute      // at most one fetch per this, whatever the kids tokens name
	DefaultJWKSTimeout    = 10 * time.Second // one JWKS fetch, connect to last byte
	MinJWKSInterval       = time.Second      // JWKSRefresh and JWKSMinRefetch below it are errors
	MaxJWKSBytes          = 1 << 20          // a larger JWKS document is refused, the last good set kept
	MaxJWKSKeys           = 100              // a JWKS with more keys is refused, the last good set kept

	MinSecretLen = 32 // bytes of an HS256 secret: RFC 7518 3.2 wants a key as long as the hash

	MaxTokenLen        = 16 << 10 // bytes of a token; longer is refused before it is decoded
	MaxUserLen         = 1024     // bytes of sub
	MaxInfoLen         = 1024     // bytes of info, compacted (hub.MaxInfoLen)
	DefaultMaxChannels = 128      // entries of channels (hub.DefaultMaxSubscriptions)
)

// Config says which tokens a Verifier accepts. Keys come from Secret, PublicKeys and JWKSURL,
// any mix of them; at least one is required. Reading them from files or the environment is the
// configuration layer's job (LoadPEMFile helps). A Config is copied by New: changing it later
// changes nothing.
type Config struct {
	// Algorithms a token's alg may name: HS256, RS256, ES256, EdDSA. Default: those the
	// configured keys can check: HS256 with Secret, the algorithm of each of PublicKeys, and
	// RS256, ES256 and EdDSA with JWKSURL. Naming one without a key for it is an error.
	Algorithms []string

	// Secret is the HS256 key, at least MinSecretLen bytes. HS256 tokens are checked with it
	// alone: never with a public key, whatever the token says.
	Secret []byte

	// PublicKeys are RSA (2048 bits or more), EC P-256 and Ed25519 public keys in PEM.
	PublicKeys []PublicKey

	// JWKSURL is an https URL serving a JSON Web Key Set (RFC 7517) of RSA, EC P-256 and
	// Ed25519 keys; symmetric keys in it are ignored. Plain http is refused unless the host is
	// a loopback address or JWKSInsecureHTTP is set.
	JWKSURL string
	// JWKSInsecureHTTP allows an http JWKSURL on another host (an internal network you trust
	// not to rewrite the keys in flight). Default false.
	JWKSInsecureHTTP bool
	// JWKSRefresh is how often the key set is fetched again. Default DefaultJWKSRefresh; after a
	// failed fetch the next comes after JWKSMinRefetch, and the last good set stays in use.
	JWKSRefresh time.Duration
	// JWKSMinRefetch is the least time between two fetches. A token naming a kid the set does not
	// hold triggers a fetch (a rotated key), but only when the last fetch began at least this
	// long ago: random kids cost the JWKS server one request per interval, not one per token.
	// Default DefaultJWKSMinRefetch.
	JWKSMinRefetch time.Duration
	// JWKSTimeout bounds one fetch. Default DefaultJWKSTimeout.
	JWKSTimeout time.Duration
	// HTTPClient fetches the JWKS. Default: a client with JWKSTimeout as its timeout that
	// follows at most 3 redirects, none of them to a URL JWKSURL could not be.
	HTTPClient *http.Client
	// Logger is told when a JWKS fetch fails and when the set is back, with the URL redacted
	// (url.URL.Redacted). Clients are only ever told that the key set is unavailable. Default:
	// nothing is logged.
	Logger *slog.Logger

	// Audience, when set, must be one of a token's aud values.
	Audience string
	// Issuer, when set, must be a token's iss.
	Issuer string
	// Leeway is the clock skew forgiven on exp, nbf and iat. Default DefaultLeeway; negative:
	// none; above MaxLeeway: an error.
	Leeway time.Duration

	// OptionalExp accepts connection tokens without exp (an identity that never lapses).
	// Default false: exp is required.
	OptionalExp bool
	// OptionalChannelExp accepts channel tokens without exp. Default false: exp is required.
	OptionalChannelExp bool
	// AnonymousChannels accepts channel tokens with an empty sub, for anonymous connections
	// (user ""). Default false: such a token would let whoever holds it in, so it must be asked
	// for.
	AnonymousChannels bool
	// MaxChannels bounds the channels claim of a connection token. Default DefaultMaxChannels.
	MaxChannels int
}

// PublicKey is one verification key in PEM: a PUBLIC KEY (PKIX), RSA PUBLIC KEY (PKCS#1) or
// CERTIFICATE block (its key is used; its dates and chain are not checked: pinning the key is
// the point).
type PublicKey struct {
	// KID is matched against a token's kid header. A key without a KID checks tokens with any
	// kid (or none) that no other key claims.
	KID string
	// PEM holds exactly one block.
	PEM []byte
}

// maxJWKSRedirects bounds the redirects the default JWKS client follows.
const maxJWKSRedirects = 3

// ErrConfig is wrapped by every error New returns for a Config it cannot use.
var ErrConfig = errors.New("jwtauth: bad config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// resolve checks c and fills its defaults, in one place.
func (c Config) resolve() (Config, error) {
	if len(c.Secret) > 0 && len(c.Secret) < MinSecretLen {
		return c, configErr("Secret has %d bytes; HS256 wants at least %d", len(c.Secret), MinSecretLen)
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	case c.Leeway > MaxLeeway:
		return c, configErr("Leeway %v is above %v", c.Leeway, MaxLeeway)
	}
	if c.MaxChannels < 0 {
		return c, configErr("MaxChannels %d is negative", c.MaxChannels)
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL, c.JWKSInsecureHTTP); err != nil {
			return c, err
		}
		for _, d := range []struct {
			name string
			v    *time.Duration
			def  time.Duration
		}{{"JWKSRefresh", &c.JWKSRefresh, DefaultJWKSRefresh}, {"JWKSMinRefetch", &c.JWKSMinRefetch, DefaultJWKSMinRefetch}, {"JWKSTimeout", &c.JWKSTimeout, DefaultJWKSTimeout}} {
			if *d.v == 0 {
				*d.v = d.def
			}
			if *d.v < MinJWKSInterval {
				return c, configErr("%s %v is below %v", d.name, *d.v, MinJWKSInterval)
			}
		}
		if c.HTTPClient == nil {
			insecure := c.JWKSInsecureHTTP
			c.HTTPClient = &http.Client{Timeout: c.JWKSTimeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= maxJWKSRedirects {
					return fmt.Errorf("jwtauth: jwks: more than %d redirects", maxJWKSRedirects)
				}
				return checkJWKSURL(req.URL.String(), insecure) // no downgrade to plain http
			}}
		}
	}
	c.Algorithms = slices.Clone(c.Algorithms)
	c.Secret = slices.Clone(c.Secret)
	c.PublicKeys = slices.Clone(c.PublicKeys)
	return c, nil
}

// checkJWKSURL refuses a URL that would let the network choose our keys.
func checkJWKSURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return configErr("JWKSURL: %v", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if insecure {
			break
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return configErr("JWKSURL %q is plain http to another host: use https (or JWKSInsecureHTTP)", raw)
		}
	default:
		return configErr("JWKSURL %q: scheme must be https", raw)
	}
	if u.Host == "" {
		return configErr("JWKSURL %q has no host", raw)
	}
	return nil
}

// algorithms resolves the allowed algorithms against the keys there are.
func algorithms(c Config, static []key) (map[string]bool, error) {
	have := map[string]bool{}
	if len(c.Secret) > 0 {
		have[HS256] = true
	}
	for _, k := range static {
		have[k.alg] = true
	}
	if c.JWKSURL != "" {
		have[RS256], have[ES256], have[EdDSA] = true, true, true
	}
	if len(have) == 0 {
		return nil, configErr("no key: set Secret, PublicKeys or JWKSURL")
	}
	if len(c.Algorithms) == 0 {
		return have, nil
	}
	allowed := map[string]bool{}
	for _, a := range c.Algorithms {
		switch a {
		case HS256, RS256, ES256, EdDSA:
		default:
			return nil, configErr("algorithm %q: want HS256, RS256, ES256 or EdDSA", a)
		}
		if !have[a] {
			return nil, configErr("algorithm %s is allowed but no key can check it", a)
		}
		allowed[a] = true
	}
	return allowed, nil
}
