package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
)

// Decode names every unknown key and bad value by its key, all at once.
func TestDecodeNamesKeys(t *testing.T) {
	tree := map[string]any{
		"auth": map[string]any{"jwt": map[string]any{"isuer": "x", "audience": 3}, "cookie": []any{"a"}},
		"namespaces": []any{
			map[string]any{"prefix": "a:", "publish": "maybe"},
			map[string]any{"prefix": "b:", "history_size": "many", "history_ttl": "1 hour"},
			"not a map",
		},
		"limits": map[string]any{"connections_per_user": 1.5, "handshakes_per_second": "x"},
		"extra":  1,
	}
	_, err := gateway.Decode(tree)
	if err == nil {
		t.Fatal("Decode accepted a bad tree")
	}
	for _, want := range []string{
		"auth.jwt.isuer: unknown key",
		"auth.cookie: want a string, got a list",
		"namespaces[0].publish: want true or false",
		"namespaces[1].history_size: want a whole number",
		"namespaces[1].history_ttl: want a duration",
		"namespaces[2]: want a map of keys",
		"limits.connections_per_user: want a whole number",
		"limits.handshakes_per_second: want a number",
		"extra: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Decode's errors lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "auth.jwt.audience") { // a number is taken as a string
		t.Errorf("audience: 3 refused: %v", err)
	}
}

func TestDecodeValues(t *testing.T) {
	c, err := gateway.Decode(map[string]any{
		"auth":     map[string]any{"jwt": map[string]any{"public_key_files": "a.pem, b.pem"}, "anonymous": "true"},
		"channels": map[string]any{"presence": false},
		"namespaces": []any{map[string]any{"prefix": "chat:", "publish": true, "history_size": 0, "history_ttl": "90s",
			"subscribe": "token"}},
		"limits": map[string]any{"handshakes_per_second": 2, "handshake_burst": "4"},
		"api":    map[string]any{"keys": []any{"k1", "k2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespaces[0]
	if len(c.Auth.JWT.PublicKeyFiles) != 2 || c.Auth.JWT.PublicKeyFiles[1] != "b.pem" || !c.Auth.Anonymous ||
		c.Channels.Presence == nil || *c.Channels.Presence || ns.Prefix != "chat:" || ns.Publish == nil || !*ns.Publish ||
		ns.HistorySize == nil || *ns.HistorySize != 0 || ns.HistoryTTL != 90*time.Second || ns.Subscribe != "token" ||
		c.Limits.HandshakesPerSecond != 2 || c.Limits.HandshakeBurst != 4 || len(c.API.Keys) != 2 {
		t.Fatalf("decoded %+v", c)
	}
}

func TestCheckNamesKeys(t *testing.T) {
	c := gateway.Config{
		Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: "short", JWKSURL: "ftp://x"}, RefreshURL: "http://b/refresh", Query: "a b"},
		Namespaces: []gateway.Namespace{
			{Prefix: "a:"},
			{Prefix: "b:", ChannelRules: gateway.ChannelRules{HistorySize: intp(-1), Subscribe: "backend"}},
			{Prefix: "a:"},
			{Prefix: ""},
			{Prefix: "x#"},
		},
		Channels: gateway.ChannelRules{HistorySize: intp(5)},
		Limits:   gateway.Limits{ConnectionsPerUser: -1, HandshakeBurst: 3},
		API:      gateway.API{Path: "api/", Keys: []string{"short"}},
	}
	err := c.Check()
	if err == nil {
		t.Fatal("Check passed a bad config")
	}
	for _, want := range []string{
		"auth.jwt.hmac_secret: 5 bytes: want at least 32",
		"auth.jwt.jwks_url: want an http:// or https:// URL",
		"auth.refresh_url: needs auth.connect_url",
		"auth.query: \"a b\" is not a valid name",
		"namespaces[1].history_size: must not be negative",
		"backend.subscribe_url: required by subscribe: backend",
		"namespaces[2].prefix: \"a:\" is namespaces[0]'s too",
		"namespaces[3].prefix: required",
		"namespaces[4].prefix: \"x#\": a prefix cannot hold '#'",
		"channels.history_size: is the broker's history-size setting",
		"limits.connections_per_user: must not be negative",
		"limits.handshake_burst: needs limits.handshakes_per_second",
		"api.keys[0]: 5 bytes: want at least 16",
		"api.path: want a path such as /api",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check's errors lack %q:\n%v", want, err)
		}
	}
	if err := (&gateway.Config{}).Check(); err != nil {
		t.Fatalf("the zero Config: %v", err)
	}
}

func TestKeysListsEveryField(t *testing.T) {
	keys := strings.Join(gateway.Keys(), " ")
	for _, want := range []string{"auth.jwt.hmac_secret", "auth.cookie", "channels.publish", "namespaces", "namespaces[].prefix",
		"namespaces[].history_ttl", "user_channels.disabled", "backend.events_url", "limits.connections_per_user", "api.keys",
		"demo.enabled"} {
		if !strings.Contains(" "+keys+" ", " "+want+" ") {
			t.Errorf("Keys() lacks %s: %s", want, keys)
		}
	}
}
