package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/jwtauth"
	"github.com/wsgate/wsgate/protocol"
)

// Config is the gateway's configuration: the sections of the config file's gateway part, each
// field tagged with its key. The zero value is the open gateway wsgate serve has always been:
// no identity asked, every channel open to everyone, no backend, no limit beyond the hub's.
// docs/CONFIG.md documents every key; Check reports what cannot work.
type Config struct {
	Auth Auth `koanf:"auth"`
	// Channels are the options of the channels outside every namespace.
	Channels ChannelRules `koanf:"channels"`
	// Namespaces give the channels whose names start with their Prefix options of their own;
	// the longest matching prefix wins.
	Namespaces   []Namespace  `koanf:"namespaces"`
	UserChannels UserChannels `koanf:"user_channels"`
	Backend      Backend      `koanf:"backend"`
	Limits       Limits       `koanf:"limits"`
	API          API          `koanf:"api"`
	Demo         Demo         `koanf:"demo"`
	Admin        Admin        `koanf:"admin"`
}

// Auth says who a connection is. With none of JWT, ConnectURL set every connection is
// anonymous; with one of them, every connection must identify itself (wsgate.v1: a connect
// request; raw: a token in the upgrade request, or the backend from its cookies), unless
// Anonymous lets those without a token in.
type Auth struct {
	JWT JWT `koanf:"jwt"`
	// Cookie names a cookie that holds a token for raw connections ("" none). The
	// Authorization: Bearer header is always looked at.
	Cookie string `koanf:"cookie"`
	// Query names a query parameter that holds a token for raw connections ("" none). It is
	// never written to a log line, but proxies may log URLs: prefer the header or the cookie.
	Query string `koanf:"query"`
	// ConnectURL is the backend's connect endpoint (gateway/proxy): asked, with the handshake's
	// cookies and headers, who a connection without a token is. "" none.
	ConnectURL string `koanf:"connect_url"`
	// RefreshURL is the backend's refresh endpoint, asked when an identity from ConnectURL
	// expires. "" none: such identities cannot be refreshed and lapse.
	RefreshURL string `koanf:"refresh_url"`
	// Anonymous lets a connection without a token in as anonymous (user ""), where it would be
	// refused (401, error 109). Default false.
	Anonymous bool `koanf:"anonymous"`
	// ConnectTimeout bounds the time from upgrade to connect of a wsgate.v1 connection; beyond,
	// it is closed with 4002. Default 0: the hub's (10 s).
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// RefreshGrace is how long after its identity expired a connection may still refresh before
	// it is closed with 4501. Default 0: the hub's (10 s).
	RefreshGrace time.Duration `koanf:"refresh_grace"`
}

// JWT configures token verification (gateway/jwtauth). A token is accepted when a key below
// verifies it and its aud and iss match.
type JWT struct {
	// HMACSecret is the HS256 secret. Keep it out of files others read: set it from the
	// environment (WSGATE_JWT_HMAC_SECRET) or HMACSecretFile.
	HMACSecret string `koanf:"hmac_secret"`
	// HMACSecretFile is a file holding the HS256 secret (trailing newline dropped).
	HMACSecretFile string `koanf:"hmac_secret_file"`
	// PublicKeyFiles are PEM files of RSA, ECDSA or Ed25519 public keys (RS256, ES256, EdDSA).
	PublicKeyFiles []string `koanf:"public_key_files"`
	// JWKSURL is a JSON Web Key Set fetched and cached, refetched for a key ID it lacks.
	JWKSURL string `koanf:"jwks_url"`
	// Audience, when set, must be in the token's aud; Issuer must be its iss.
	Audience string `koanf:"audience"`
	Issuer   string `koanf:"issuer"`
}

// Configured reports whether any key is set: tokens are verified.
func (j *JWT) Configured() bool {
	return j.HMACSecret != "" || j.HMACSecretFile != "" || len(j.PublicKeyFiles) > 0 || j.JWKSURL != ""
}

// Secret is the HS256 secret, from HMACSecret or HMACSecretFile (jwtauth.LoadSecretFile:
// its trailing newline dropped); nil when neither is set.
func (j *JWT) Secret() ([]byte, error) {
	if j.HMACSecret != "" {
		return []byte(j.HMACSecret), nil
	}
	if j.HMACSecretFile == "" {
		return nil, nil
	}
	b, err := jwtauth.LoadSecretFile(j.HMACSecretFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: auth.jwt.hmac_secret_file: %w", err)
	}
	return b, nil
}

// Subscribe modes of a namespace.
const (
	SubscribeOpen    = "open"    // anyone may subscribe (the default)
	SubscribeToken   = "token"   // a channel token (gateway/jwtauth) naming the channel is needed
	SubscribeBackend = "backend" // the backend's subscribe endpoint decides (Backend.SubscribeURL)
)

// ChannelRules are what clients may do on a channel. Unset fields allow: a namespace names what
// it takes away.
type ChannelRules struct {
	// Publish: may clients publish? Default true. (The backend API always may.)
	Publish *bool `koanf:"publish"`
	// Subscribe is SubscribeOpen (default ""), SubscribeToken or SubscribeBackend.
	Subscribe string `koanf:"subscribe"`
	// Presence: may subscribers ask who is there? Default true. Off: error 112, and no
	// join/leave either.
	Presence *bool `koanf:"presence"`
	// JoinLeave: may subscribers ask for join and leave pushes? Default true; off: error 112.
	JoinLeave *bool `koanf:"join_leave"`
	// HistorySize is how many publications a channel keeps for history and recovery. Default:
	// the broker's (-history-size); 0 keeps none.
	HistorySize *int `koanf:"history_size"`
	// HistoryTTL is how long they are kept. Default 0: the broker's (-history-ttl).
	HistoryTTL time.Duration `koanf:"history_ttl"`
	// History: may subscribers read history? Default true; off: error 112.
	History *bool `koanf:"history"`
	// Recovery: may a resubscribe recover what it missed? Default true; off: it is told it did
	// not recover.
	Recovery *bool `koanf:"recovery"`
}

// Namespace is a channel name prefix ("chat:") and its rules.
type Namespace struct {
	Prefix       string `koanf:"prefix"`
	ChannelRules `koanf:",squash"`
}

// UserChannels are channels whose name holds '#': the part after it lists the users, separated
// by ',', who alone may subscribe and publish ("#alice" is alice's, "dm:#alice,bob" alice's and
// bob's). The part before it is the namespace as for any channel.
type UserChannels struct {
	// Disabled treats '#' as any other byte: the channels are open as their namespace says.
	Disabled bool `koanf:"disabled"`
}

// Backend is where the gateway's calls to the application go (gateway/proxy, gateway/events).
type Backend struct {
	// SubscribeURL decides on subscriptions to namespaces with subscribe: backend.
	SubscribeURL string `koanf:"subscribe_url"`
	// PublishURL, when set, sees every client publication: allow, refuse or replace its data.
	PublishURL string `koanf:"publish_url"`
	// RPCURL answers rpc requests; without it rpc answers error 112.
	RPCURL string `koanf:"rpc_url"`
	// EventsURL receives connect and disconnect events, at least once, from a bounded outbox.
	EventsURL string `koanf:"events_url"`
	// Secret, when set, goes with every call and event to the backend as the header
	// X-Wsgate-Secret, by which it knows the call is wsgate's (its endpoints are reachable by
	// others: a forged disconnect event, a connect oracle). Set it from WSGATE_BACKEND_SECRET.
	Secret string `koanf:"secret"`
	// Timeout bounds one attempt of a call to the backend. Default 3 s (proxy.DefaultTimeout).
	Timeout time.Duration `koanf:"timeout"`
	// Retries is how many more attempts a call gets after a network error, a timeout or a
	// 502-504 (a publish only when the backend cannot have seen it). Default 0: 2
	// (proxy.DefaultRetries); negative: none.
	Retries int `koanf:"retries"`
	// RPCRetries is the same for rpc calls, on their own: an rpc method may not be idempotent,
	// and a timeout or a 502-504 may come after the backend ran it, so by default (0) an rpc
	// call is made once. Set it for methods that may run twice.
	RPCRetries int `koanf:"rpc_retries"`
}

// Limits bound what one user and one address may cost, beyond the hub's per-connection ones
// (-request-rate, -request-burst, -max-subscriptions) and the connection caps.
type Limits struct {
	// ConnectionsPerUser caps one user's live connections on this node (not across a cluster:
	// each node counts its own). Beyond: wsgate.v1 connect gets error 204 and close 4503; a raw
	// upgrade gets 429. Default 0: no cap.
	ConnectionsPerUser int `koanf:"connections_per_user"`
	// HandshakesPerSecond bounds upgrade requests per second from one client address (IPv4, or
	// IPv6 /64; behind -trusted-proxies the client's), with a burst of HandshakeBurst; beyond,
	// 429 with Retry-After. Default 0: no bound.
	HandshakesPerSecond float64 `koanf:"handshakes_per_second"`
	// HandshakeBurst: default the rate rounded up, at least 1.
	HandshakeBurst int `koanf:"handshake_burst"`
	// HandshakeAddresses bounds the addresses whose buckets are kept; the least recently seen
	// give way. Default 65536 (about 10 MB).
	HandshakeAddresses int `koanf:"handshake_addresses"`
}

// API is the backend HTTP API (gateway/api).
type API struct {
	// Keys are the API keys (WSGATE_API_KEY, comma-separated). Keep them out of files others
	// read: the environment, or KeyFile.
	Keys []string `koanf:"keys"`
	// KeyFile holds one key per line.
	KeyFile string `koanf:"key_file"`
	// Listen serves the API on its own listener (host:port) rather than beside /ws.
	Listen string `koanf:"listen"`
	// Path mounts the API on the main listener under this path ("/api"). Default "" with
	// Listen; both empty: no API.
	Path string `koanf:"path"`
}

// LoadKeys returns Keys and the keys of KeyFile (one a line, blank lines and # comments
// skipped).
func (a *API) LoadKeys() ([]string, error) {
	keys := slices.Clone(a.Keys)
	if a.KeyFile == "" {
		return keys, nil
	}
	b, err := os.ReadFile(a.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: api.key_file: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("gateway: api.key_file holds no key")
	}
	return keys, nil
}

// Enabled reports whether the API is served.
func (a *API) Enabled() bool { return a.Listen != "" || a.Path != "" }

// Admin is the admin page of wsgate serve at /admin: off (404) unless a secret is set. The
// page logs in with the secret and calls the backend API (gateway/api) with the session.
type Admin struct {
	// Secret is what an admin types to log in, at least 16 bytes. Keep it out of files others
	// read: set it from the environment (WSGATE_ADMIN_SECRET) or SecretFile.
	Secret string `koanf:"secret"`
	// SecretFile is a file holding the secret (its trailing newline dropped).
	SecretFile string `koanf:"secret_file"`
	// SessionTTL is how long a login lasts. Default 0: DefaultAdminSessionTTL.
	SessionTTL time.Duration `koanf:"session_ttl"`
}

// Enabled reports whether the admin page is served.
func (a *Admin) Enabled() bool { return a.Secret != "" || a.SecretFile != "" }

// LoadSecret returns Secret, or SecretFile's content without its trailing newline.
func (a *Admin) LoadSecret() (string, error) {
	if a.Secret != "" || a.SecretFile == "" {
		return a.Secret, nil
	}
	b, err := os.ReadFile(a.SecretFile)
	if err != nil {
		return "", fmt.Errorf("gateway: admin.secret_file: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) < MinAdminSecretLen {
		return "", fmt.Errorf("gateway: admin.secret_file: %d bytes: want at least %d", len(s), MinAdminSecretLen)
	}
	return s, nil
}

// Demo is wsgate serve -demo: insecure, for trying the chat page with names.
type Demo struct {
	// Enabled adds POST /demo/token, which signs a token for any name asked: anyone is anyone.
	Enabled bool `koanf:"enabled"`
	// TokenTTL is the demo tokens' lifetime. Default 1 h.
	TokenTTL time.Duration `koanf:"token_ttl"`
}

// Defaults of Config's zero fields.
const (
	DefaultHandshakeAddresses = 1 << 16
	DefaultDemoTokenTTL       = time.Hour
	// DefaultAdminSessionTTL is how long an admin login lasts by default.
	DefaultAdminSessionTTL = 8 * time.Hour
	// MinAdminSecretLen is the shortest admin secret accepted, in bytes.
	MinAdminSecretLen = 16
	// SecretHeader carries Backend.Secret.
	SecretHeader = "X-Wsgate-Secret"
	// MaxNamespaces bounds the namespace list: each channel name is matched against it.
	MaxNamespaces = 1000
)

// Check reports every setting that cannot work, each error naming its key; nil when c is usable.
func (c *Config) Check() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	checkURL := func(key, u string) {
		if u == "" {
			return
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(key, "want an http:// or https:// URL, got %q", u)
		}
	}
	checkFile := func(key, f string) {
		if f == "" {
			return
		}
		if _, err := os.Stat(f); err != nil {
			bad(key, "%v", errors.Unwrap(err))
		}
	}
	j := &c.Auth.JWT
	if j.HMACSecret != "" && j.HMACSecretFile != "" {
		bad("auth.jwt.hmac_secret_file", "give the secret or its file, not both")
	}
	if j.HMACSecret != "" && len(j.HMACSecret) < jwtauth.MinSecretLen {
		bad("auth.jwt.hmac_secret", "%d bytes: want at least %d (HS256 keys as long as the hash)", len(j.HMACSecret), jwtauth.MinSecretLen)
	}
	checkFile("auth.jwt.hmac_secret_file", j.HMACSecretFile)
	for i, f := range j.PublicKeyFiles {
		checkFile(fmt.Sprintf("auth.jwt.public_key_files[%d]", i), f)
	}
	checkURL("auth.jwt.jwks_url", j.JWKSURL)
	if !j.Configured() && (j.Audience != "" || j.Issuer != "") {
		bad("auth.jwt", "audience and issuer need a key: hmac_secret, hmac_secret_file, public_key_files or jwks_url")
	}
	checkURL("auth.connect_url", c.Auth.ConnectURL)
	checkURL("auth.refresh_url", c.Auth.RefreshURL)
	if c.Auth.RefreshURL != "" && c.Auth.ConnectURL == "" {
		bad("auth.refresh_url", "needs auth.connect_url")
	}
	for key, v := range map[string]string{"auth.cookie": c.Auth.Cookie, "auth.query": c.Auth.Query} {
		if strings.ContainsAny(v, " ;,=\"\t\r\n") {
			bad(key, "%q is not a valid name", v)
		}
	}
	if c.Auth.ConnectTimeout < 0 {
		bad("auth.connect_timeout", "must not be negative")
	}
	if c.Auth.RefreshGrace < 0 {
		bad("auth.refresh_grace", "must not be negative")
	}
	if c.Auth.Anonymous && !c.authConfigured() {
		bad("auth.anonymous", "means nothing without auth.jwt or auth.connect_url: everyone is anonymous already")
	}

	backendSubscribe := false
	checkRules := func(key string, r *ChannelRules) {
		switch r.Subscribe {
		case "", SubscribeOpen:
		case SubscribeToken:
			if !j.Configured() {
				bad(key+".subscribe", "token needs auth.jwt (a key to verify channel tokens)")
			}
		case SubscribeBackend:
			backendSubscribe = true
		default:
			bad(key+".subscribe", "want open, token or backend, got %q", r.Subscribe)
		}
		if r.HistorySize != nil && *r.HistorySize < 0 {
			bad(key+".history_size", "must not be negative")
		}
		if r.HistoryTTL < 0 {
			bad(key+".history_ttl", "must not be negative")
		}
	}
	checkRules("channels", &c.Channels)
	if c.Channels.HistorySize != nil {
		bad("channels.history_size", "is the broker's history-size setting outside namespaces: set that")
	}
	if c.Channels.HistoryTTL != 0 {
		bad("channels.history_ttl", "is the broker's history-ttl setting outside namespaces: set that")
	}
	if len(c.Namespaces) > MaxNamespaces {
		bad("namespaces", "%d namespaces: at most %d", len(c.Namespaces), MaxNamespaces)
	}
	seen := map[string]int{}
	for i, ns := range c.Namespaces {
		key := fmt.Sprintf("namespaces[%d]", i)
		switch {
		case ns.Prefix == "":
			bad(key+".prefix", "required (the channels outside every namespace are the channels section)")
		case strings.Contains(ns.Prefix, "#"):
			bad(key+".prefix", "%q: a prefix cannot hold '#', which starts a user channel's users", ns.Prefix)
		case protocol.ValidChannel(ns.Prefix) != nil:
			bad(key+".prefix", "%q is not the start of a valid channel name", ns.Prefix)
		}
		if j, dup := seen[ns.Prefix]; dup && ns.Prefix != "" {
			bad(key+".prefix", "%q is namespaces[%d]'s too", ns.Prefix, j)
		}
		seen[ns.Prefix] = i
		checkRules(key, &ns.ChannelRules)
	}
	if backendSubscribe && c.Backend.SubscribeURL == "" {
		bad("backend.subscribe_url", "required by subscribe: backend")
	}
	checkURL("backend.subscribe_url", c.Backend.SubscribeURL)
	checkURL("backend.publish_url", c.Backend.PublishURL)
	checkURL("backend.rpc_url", c.Backend.RPCURL)
	checkURL("backend.events_url", c.Backend.EventsURL)
	if n := len(c.Backend.Secret); n > 0 && n < 16 {
		bad("backend.secret", "%d bytes: want at least 16", n)
	}
	if strings.ContainsAny(c.Backend.Secret, "\r\n\x00") {
		bad("backend.secret", "cannot hold a line break or NUL (it goes in a header)")
	}
	if c.Backend.Timeout < 0 {
		bad("backend.timeout", "must not be negative")
	}
	if c.Backend.RPCRetries < 0 || c.Backend.RPCRetries > 10 {
		bad("backend.rpc_retries", "want 0 to 10, got %d", c.Backend.RPCRetries)
	}
	if c.Backend.Retries > 10 {
		bad("backend.retries", "want at most 10, got %d", c.Backend.Retries)
	}

	l := &c.Limits
	if l.ConnectionsPerUser < 0 {
		bad("limits.connections_per_user", "must not be negative")
	}
	if l.HandshakesPerSecond < 0 {
		bad("limits.handshakes_per_second", "must not be negative")
	}
	if l.HandshakeBurst < 0 {
		bad("limits.handshake_burst", "must not be negative")
	}
	if l.HandshakeBurst > 0 && l.HandshakesPerSecond == 0 {
		bad("limits.handshake_burst", "needs limits.handshakes_per_second")
	}
	if l.HandshakeAddresses < 0 {
		bad("limits.handshake_addresses", "must not be negative")
	}

	for i, k := range c.API.Keys {
		if len(k) < 16 {
			bad(fmt.Sprintf("api.keys[%d]", i), "%d bytes: want at least 16", len(k))
		}
	}
	checkFile("api.key_file", c.API.KeyFile)
	if c.API.Path != "" && (!strings.HasPrefix(c.API.Path, "/") || strings.HasSuffix(c.API.Path, "/") ||
		c.API.Path == "/ws" || c.API.Path == "/demo" || c.API.Path == "/admin" || strings.HasPrefix(c.API.Path, "/admin/")) {
		bad("api.path", "want a path such as /api (a leading /, no trailing /, not /ws or /admin), got %q", c.API.Path)
	}
	if c.API.Path != "" && c.API.Listen != "" {
		bad("api.path", "give api.listen or api.path, not both")
	}
	if c.API.Enabled() && len(c.API.Keys) == 0 && c.API.KeyFile == "" {
		bad("api.keys", "the API needs a key: api.keys (WSGATE_API_KEY) or api.key_file")
	}
	if c.API.Listen != "" {
		if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
			bad("api.listen", "want host:port, got %q", c.API.Listen)
		}
	}
	if c.Demo.Enabled && j.Configured() && j.HMACSecret == "" && j.HMACSecretFile == "" {
		bad("demo.enabled", "the demo signs HS256 tokens: set auth.jwt.hmac_secret (or its file) beside the public keys")
	}
	if c.Demo.TokenTTL < 0 {
		bad("demo.token_ttl", "must not be negative")
	}
	ad := &c.Admin
	if ad.Secret != "" && ad.SecretFile != "" {
		bad("admin.secret_file", "give the secret or its file, not both")
	}
	if n := len(ad.Secret); n > 0 && n < MinAdminSecretLen {
		bad("admin.secret", "%d bytes: want at least %d", n, MinAdminSecretLen)
	}
	checkFile("admin.secret_file", ad.SecretFile)
	if ad.SessionTTL < 0 {
		bad("admin.session_ttl", "must not be negative")
	}
	if ad.SessionTTL != 0 && !ad.Enabled() {
		bad("admin.session_ttl", "means nothing without admin.secret (WSGATE_ADMIN_SECRET) or admin.secret_file")
	}
	return errors.Join(errs...)
}

// authConfigured reports whether connections must identify themselves.
func (c *Config) authConfigured() bool {
	return c.Auth.JWT.Configured() || c.Auth.ConnectURL != ""
}

// BrokerNamespaces are the namespaces' history bounds for the broker's options, one for every
// namespace: the broker applies the longest prefix in its list, so a namespace left out would
// take a shorter prefix's bounds (chat:public: those of chat:) instead of the server's.
// defaultSize is the broker's history size, for a namespace that does not set its own; an unset
// age is the broker's (0).
func (c *Config) BrokerNamespaces(defaultSize int) []broker.Namespace {
	var out []broker.Namespace
	for _, ns := range c.Namespaces {
		size := defaultSize
		if ns.HistorySize != nil {
			size = *ns.HistorySize
		}
		out = append(out, broker.Namespace{Prefix: ns.Prefix, HistorySize: size, HistoryTTL: ns.HistoryTTL})
	}
	return out
}
