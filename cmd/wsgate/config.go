package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/hub"
)

// The config file (-config FILE, YAML) holds every setting: the flags by their own names at
// its top level ("read-limit: 1048576"), and the gateway's settings in nested sections (auth,
// channels, namespaces, user_channels, backend, limits, api, demo, admin: see docs/CONFIG.md).
// Precedence is flags > environment > file > defaults, for each setting on its own.

// gatewayFlags are the gateway settings that are also flags (and so WSGATE_ variables): the
// ones an operator changes per deployment. Each sets its file key.
var gatewayFlags = []struct{ name, key, usage string }{
	{"demo", "demo.enabled", "INSECURE, for trying wsgate out: POST /demo/token signs a token for any name asked, so the chat page joins as the nickname typed"},
	{"jwt-hmac-secret-file", "auth.jwt.hmac_secret_file", "`file` holding the HS256 secret of connection and channel tokens (or env WSGATE_JWT_HMAC_SECRET)"},
	{"jwt-public-key-files", "auth.jwt.public_key_files", "comma-separated PEM `files` of RS256, ES256 or EdDSA public keys verifying tokens"},
	{"jwt-jwks-url", "auth.jwt.jwks_url", "`URL` of a JSON Web Key Set verifying tokens, cached and refetched on rotation"},
	{"jwt-audience", "auth.jwt.audience", "`aud` every token must name"},
	{"jwt-issuer", "auth.jwt.issuer", "`iss` every token must have"},
	{"auth-cookie", "auth.cookie", "`name` of a cookie holding a raw connection's token"},
	{"auth-query", "auth.query", "`name` of a query parameter holding a raw connection's token (never logged by wsgate, but proxies may log URLs)"},
	{"auth-anonymous", "auth.anonymous", "with auth configured, let connections without a token in as anonymous instead of refusing them"},
	{"connect-url", "auth.connect_url", "backend `URL` asked who a connection without a token is, with the handshake's cookies"},
	{"events-url", "backend.events_url", "backend `URL` receiving connect and disconnect events, at least once"},
	{"max-connections-per-user", "limits.connections_per_user", "cap on one user's live `connections` on this node; beyond, error 204 and close 4503 (raw: 429); 0 means no cap"},
	{"handshakes-per-second", "limits.handshakes_per_second", "upgrade `requests` per second allowed from one client address (IPv4, or IPv6 /64); beyond, 429 with Retry-After; 0 means no bound"},
	{"api-listen", "api.listen", "`host:port` of the backend HTTP API's own listener"},
	{"api-path", "api.path", "`path` of the backend HTTP API on the main listener, such as /api"},
	{"api-key-file", "api.key_file", "`file` of backend API keys, one a line (or env WSGATE_API_KEY)"},
	{"admin-secret-file", "admin.secret_file", "`file` holding the secret that logs in to the admin page at /admin (or env WSGATE_ADMIN_SECRET); neither: no admin page"},
}

// gatewaySecrets are set from the environment only: a command line is visible to every user of
// the host.
var gatewaySecrets = []struct{ env, key string }{
	{"WSGATE_JWT_HMAC_SECRET", "auth.jwt.hmac_secret"},
	{"WSGATE_API_KEY", "api.keys"},
	{"WSGATE_BACKEND_SECRET", "backend.secret"},
	{"WSGATE_ADMIN_SECRET", "admin.secret"},
}

// gatewayValue is a gateway flag: it keeps the string given (by the flag or its variable), to
// be set at its key over the file's tree. It checks the value as the file's would be.
type gatewayValue struct {
	o        *options
	key      string
	bool     bool
	defValue string
}

func (v *gatewayValue) String() string {
	if v == nil || v.o == nil {
		return ""
	}
	if s, ok := v.o.gwSet[v.key]; ok {
		return s
	}
	return v.defValue
}

func (v *gatewayValue) Set(s string) error {
	if _, err := gateway.Decode(unflatten(map[string]any{v.key: s})); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), v.key+": "))
	}
	if v.o.gwSet == nil {
		v.o.gwSet = map[string]string{}
	}
	v.o.gwSet[v.key] = s
	return nil
}

func (v *gatewayValue) IsBoolFlag() bool { return v.bool }

// addGatewayFlags adds -config and the gateway flags to fs.
func addGatewayFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.configFile, "config", o.configFile, "YAML `file` of settings: every flag by its name, and the gateway's sections (see docs/CONFIG.md); flags and env win over it")
	for _, f := range gatewayFlags {
		isBool := f.key == "demo.enabled" || f.key == "auth.anonymous"
		def := ""
		if isBool {
			def = "false"
		}
		fs.Var(&gatewayValue{o: o, key: f.key, bool: isBool, defValue: def}, f.name, f.usage)
	}
}

// unflatten turns {"a.b": v} into {"a": {"b": v}}.
func unflatten(flat map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range flat {
		m := out
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// gatewaySections are the top-level keys of the file that belong to the gateway.
func gatewaySections() []string {
	var s []string
	for _, k := range gateway.Keys() {
		top, _, _ := strings.Cut(k, ".")
		top, _, _ = strings.Cut(top, "[")
		if !slices.Contains(s, top) {
			s = append(s, top)
		}
	}
	return s
}

// loadFile reads the config file into a tree of maps.
func loadFile(path string) (map[string]any, error) {
	k := koanf.New("\x00") // no key splitting: the tree is taken as the file has it
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return k.Raw(), nil
}

// applyFile sets each flag not set by the command line or the environment from the file's
// top level, and returns the file's gateway sections. Every unknown key and bad value is an
// error naming its key.
func applyFile(fs *flag.FlagSet, path string, set map[string]bool) (map[string]any, error) {
	tree, err := loadFile(path)
	if err != nil {
		return nil, err
	}
	sections := gatewaySections()
	gw := map[string]any{}
	var errs []error
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := tree[k]
		if slices.Contains(sections, k) {
			gw[k] = v
			continue
		}
		f := fs.Lookup(k)
		if f == nil || k == "config" || isGatewayFlag(k) {
			hint := ""
			if g := gatewayKeyOf(k); g != "" {
				hint = " (in the file it is " + g + ")"
			}
			errs = append(errs, fmt.Errorf("%s: unknown key%s", k, hint))
			continue
		}
		s, ok := flatValue(v)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: want a single value or a list of them", k))
			continue
		}
		if set[k] {
			continue // the command line or the environment wins
		}
		if err := fs.Set(k, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q: %v", k, s, err))
		}
	}
	return gw, errors.Join(errs...)
}

func isGatewayFlag(name string) bool { return gatewayKeyOf(name) != "" }

func gatewayKeyOf(name string) string {
	for _, f := range gatewayFlags {
		if f.name == name {
			return f.key
		}
	}
	return ""
}

// flatValue is a file's value as a flag takes it: lists comma-separated.
func flatValue(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case map[string]any:
		return "", false
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := flatValue(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	return fmt.Sprint(v), true
}

// gatewayConfig builds the gateway's Config: the file's sections, under the environment's
// secrets, under the gateway flags (or their variables).
func gatewayConfig(fileTree map[string]any, o *options, env func(string) string) (gateway.Config, error) {
	flat := map[string]any{}
	for _, s := range gatewaySecrets {
		if v := env(s.env); v != "" {
			flat[s.key] = v
		}
	}
	for k, v := range o.gwSet {
		flat[k] = v
	}
	tree := merge(fileTree, unflatten(flat))
	return gateway.Decode(tree)
}

// merge returns a with b's leaves over it (maps merged, everything else replaced).
func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = merge(am, bm)
			continue
		}
		out[k] = v
	}
	return out
}

// runConfig is "wsgate config check FILE": the file read as serve would read it (under the
// environment), every error printed with its key; "ok" and nil when serve would start with it.
func runConfig(args []string, env func(string) string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return usageError{errors.New("usage: wsgate config check FILE")}
	}
	errs := checkConfig(args[1], env)
	if len(errs) == 0 {
		_, err := fmt.Fprintln(stdout, "ok")
		return err
	}
	for _, e := range errs {
		fmt.Fprintln(stdout, e)
	}
	return configError{len(errs)}
}

// configError is the result of a config check that found errors: exit status 1.
type configError struct{ n int }

func (e configError) Error() string {
	if e.n == 1 {
		return "1 error in the configuration"
	}
	return fmt.Sprintf("%d errors in the configuration", e.n)
}

// checkConfig is every error serve would stop at for file, one line each.
func checkConfig(path string, env func(string) string) []string {
	o := defaultOptions()
	_, err := parseArgs(&o, []string{"-config", path}, env)
	var notFound *fs.PathError
	if err != nil && errors.As(err, &notFound) && notFound.Path == path {
		return []string{err.Error()}
	}
	_, tlsErr := loadTLS(o.tlsCert, o.tlsKey)
	err = errors.Join(err, o.cluster.check(), checkGateway(&o), hub.CheckOptions(&o.hub), tlsErr)
	if err == nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return lines
}
