package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway/jwtauth"
	"github.com/wsgate/wsgate/protocol"
)

const testSecret = "cmd-test-secret-0123456789abcdef-0123456789"

// writeFile writes content to a new file in the test's directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each setting on its own: a flag wins over its variable, the variable over the file, the file
// over the default; the gateway's sections likewise.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "wsgate.yaml", `
read-limit: 1000
send-queue-messages: 7
max-connections: 5
allowed-origins: [a.example, b.example]
auth:
  cookie: from-file
  query: q-from-file
limits:
  connections_per_user: 3
  handshakes_per_second: 9
namespaces:
  - prefix: "news:"
    publish: false
`)
	env := map[string]string{
		"WSGATE_READ_LIMIT":               "2000",
		"WSGATE_MAX_CONNECTIONS":          "6",
		"WSGATE_MAX_CONNECTIONS_PER_USER": "4",
		"WSGATE_AUTH_COOKIE":              "from-env",
	}
	o := defaultOptions()
	if _, err := parseArgs(&o, []string{"-config", file, "-read-limit", "3000", "-auth-cookie", "from-flag"}, envOf(env)); err != nil {
		t.Fatal(err)
	}
	if o.ws.ReadLimit != 3000 || o.ws.MaxConnections != 6 || o.ws.SendQueueMessages != 7 ||
		strings.Join(o.ws.AllowedOrigins, ",") != "a.example,b.example" || o.ws.PingInterval != defaultOptions().ws.PingInterval {
		t.Errorf("flat settings: read-limit %d (flag 3000), max-connections %d (env 6), send-queue-messages %d (file 7), origins %v",
			o.ws.ReadLimit, o.ws.MaxConnections, o.ws.SendQueueMessages, o.ws.AllowedOrigins)
	}
	g := o.gw
	if g.Auth.Cookie != "from-flag" || g.Auth.Query != "q-from-file" || g.Limits.ConnectionsPerUser != 4 ||
		g.Limits.HandshakesPerSecond != 9 || len(g.Namespaces) != 1 || *g.Namespaces[0].Publish {
		t.Errorf("gateway settings: %+v", g)
	}
	// The secrets come from the environment.
	o = defaultOptions()
	if _, err := parseArgs(&o, []string{"-config", file}, envOf(map[string]string{"WSGATE_JWT_HMAC_SECRET": testSecret,
		"WSGATE_API_KEY": "key-one-0123456789,key-two-0123456789"})); err != nil {
		t.Fatal(err)
	}
	if o.gw.Auth.JWT.HMACSecret != testSecret || len(o.gw.API.Keys) != 2 {
		t.Errorf("secrets from env: %+v", o.gw)
	}
}

func checkFile(t *testing.T, path string, env map[string]string) (string, error) {
	t.Helper()
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"config", "check", path}, envOf(env), &stdout, io.Discard)
	return stdout.String(), err
}

func TestConfigCheck(t *testing.T) {
	bad := writeFile(t, "bad.yaml", `
read-limit: lots
max-connection: 3
demo-x: 1
max-connections-per-user: 2
allowed-origins: {a: b}
auth:
  jwt:
    isuer: me
namespaces:
  - prefix: "chat:"
    history_size: -1
  - prefix: "team:"
    subscribe: backend
limits:
  handshakes_per_second: fast
`)
	out, err := checkFile(t, bad, nil)
	if exitCode(err) != 1 {
		t.Fatalf("config check of a bad file: %v (exit %d), want exit 1", err, exitCode(err))
	}
	for _, want := range []string{
		"read-limit: invalid value", "max-connection: unknown key", "demo-x: unknown key",
		"max-connections-per-user: unknown key (in the file it is limits.connections_per_user)",
		"allowed-origins: want a single value", "auth.jwt.isuer: unknown key",
		"namespaces[0].history_size: must not be negative", "backend.subscribe_url: required by subscribe: backend",
		"limits.handshakes_per_second: want a number",
	} {
		if !strings.Contains(out, want+"") {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	good := writeFile(t, "good.yaml", "read-limit: 4096\nnamespaces:\n  - prefix: \"chat:\"\n    publish: false\n")
	if out, err := checkFile(t, good, nil); err != nil || out != "ok\n" {
		t.Fatalf("config check of a good file: %q, %v", out, err)
	}
	if _, err := checkFile(t, filepath.Join(t.TempDir(), "none.yaml"), nil); exitCode(err) != 1 {
		t.Fatalf("config check of a missing file: %v", err)
	}
	if err := run(context.Background(), []string{"config", "lint"}, noEnv, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("config lint: %v, want a usage error", err)
	}
	// serve stops at the same errors, as usage errors.
	if err := run(context.Background(), []string{"serve", "-config", bad}, noEnv, io.Discard, io.Discard); exitCode(err) != 2 ||
		!strings.Contains(err.Error(), "auth.jwt.isuer: unknown key") {
		t.Fatalf("serve with a bad file: %v", err)
	}
}

// The example in the repository is a valid configuration.
func TestExampleConfig(t *testing.T) {
	out, err := checkFile(t, "../../examples/wsgate.yaml", map[string]string{
		"WSGATE_JWT_HMAC_SECRET": testSecret, "WSGATE_API_KEY": "example-key-0123456789"})
	if err != nil || out != "ok\n" {
		t.Fatalf("config check examples/wsgate.yaml: %v\n%s", err, out)
	}
}

func TestTokenSubcommand(t *testing.T) {
	secretFile := writeFile(t, "secret", testSecret+"\n")
	cfg := writeFile(t, "wsgate.yaml", "auth:\n  jwt:\n    hmac_secret_file: "+secretFile+"\n")
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, args := range [][]string{
		{"token", "-user", "alice", "-ttl", "1h", "-info", `{"name": "Alice"}`, "-channels", "#alice,news", "-config", cfg},
		{"token", "-user", "alice", "-ttl", "1h", "-info", `{"name":"Alice"}`, "-channels", "#alice,news", "-jwt-hmac-secret-file", secretFile},
	} {
		var stdout bytes.Buffer
		if err := run(context.Background(), args, noEnv, &stdout, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		c, err := v.Verify(context.Background(), strings.TrimSpace(stdout.String()))
		if err != nil {
			t.Fatalf("%q: the token does not verify: %v", args, err)
		}
		if c.User != "alice" || string(c.Info) != `{"name":"Alice"}` || strings.Join(c.Channels, ",") != "#alice,news" ||
			time.Until(c.ExpiresAt) < 59*time.Minute || time.Until(c.ExpiresAt) > time.Hour {
			t.Fatalf("%q: claims %+v", args, c)
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"token", "-user", "bob", "-channel", "private:x"}, envOf(map[string]string{
		"WSGATE_JWT_HMAC_SECRET": testSecret}), &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyChannel(context.Background(), strings.TrimSpace(stdout.String()), "bob", "private:x"); err != nil {
		t.Fatalf("channel token: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "-ttl", "1h"}, "-user is required"},
		{[]string{"token", "-user", "a"}, "no HS256 secret"},
		{[]string{"token", "-user", "a", "-jwt-hmac-secret-file", secretFile, "-info", "[1]"}, "-info must be a JSON object"},
		{[]string{"token", "-user", "a", "-jwt-hmac-secret-file", secretFile, "-ttl", "-1s"}, "-ttl must be positive"},
	} {
		err := run(context.Background(), tc.args, noEnv, io.Discard, io.Discard)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

// A token in the query string never reaches a log line, at debug level, whether it is good,
// bad or refused for another reason.
func TestQueryTokenNeverLogged(t *testing.T) {
	secretFile := writeFile(t, "secret", testSecret)
	r := startRun(t, "-jwt-hmac-secret-file", secretFile, "-auth-query", "token", "-handshakes-per-second", "100")
	good := mint(t, "alice", time.Hour)
	bad := good[:len(good)-6] + "AAAAAA"
	expired := mint(t, "alice", -time.Hour)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws?token="+good, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ws, websocket.TextMessage, "hi")
	ws.Close()
	for _, tok := range []string{bad, expired, good + "%ZZ"} {
		if ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws?token="+tok, nil); err == nil {
			ws.Close()
			t.Fatalf("token %.20q... let in", tok)
		}
	}
	// A request the http.Server itself refuses (a bad request line) goes to its ErrorLog.
	rawGet(t, r.addr, "GET /ws?token="+good+" HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	logs := r.logs.String()
	if r.logs.find("connection closed", nil) == nil {
		t.Fatalf("no debug connection log: the test saw nothing\n%s", logs)
	}
	sig := func(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }
	for _, tok := range []string{good, bad, expired} {
		if strings.Contains(logs, sig(tok)) || strings.Contains(logs, tok[:40]) {
			t.Fatalf("a token reached the log:\n%s", logs)
		}
	}
}

func mint(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := mintToken([]byte(testSecret), user, ttl, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends a JSON body and returns the answer.
func post(t *testing.T, url, body string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDemo(t *testing.T) {
	r := startRun(t, "-demo")
	base := "http://" + r.addr
	if r.logs.find(demoWarning, nil) == nil {
		t.Fatalf("no warning at start:\n%s", r.logs)
	}
	for _, p := range []string{"/", "/chat.html"} {
		if _, body := get(t, base+p); !strings.Contains(body, "INSECURE DEMO") {
			t.Errorf("GET %s: no insecure banner", p)
		}
	}
	resp, body := post(t, base+"/demo/token", `{"name":" Alice "}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /demo/token: %d %s", resp.StatusCode, body)
	}
	var tok struct{ Token, Warning string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" || tok.Warning == "" {
		t.Fatalf("POST /demo/token: %s", body)
	}
	for _, bad := range []string{``, `{}`, `{"name":""}`, `{"name":"` + strings.Repeat("x", 33) + `"}`, `{"name":"a#b"}`,
		`{"name":"a\u0000"}`, `{"name":"a","x":1}`, `{"name":"a"}{"name":"b"}`, `[` + strings.Repeat(" ", 2000) + `]`} {
		if resp, body := post(t, base+"/demo/token", bad, nil); resp.StatusCode != 400 {
			t.Errorf("POST /demo/token %.40q: %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	// The chat page's connection joins with the name, and presence lists it.
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial("ws://"+r.addr+"/ws", http.Header{"Origin": {base}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	send := func(req string) map[string]any {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			var m map[string]any
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatal(err)
			}
			if m["push"] == nil {
				return m
			}
		}
	}
	if m := send(`{"id":1,"op":"connect","token":"` + tok.Token + `"}`); m["error"] != nil || m["result"].(map[string]any)["user"] != "Alice" {
		t.Fatalf("connect with the demo token: %v", m)
	}
	send(`{"id":2,"op":"subscribe","channel":"chat:lobby"}`)
	m := send(`{"id":3,"op":"presence","channel":"chat:lobby"}`)
	if b, _ := json.Marshal(m); !strings.Contains(string(b), `"info":{"name":"Alice"}`) {
		t.Fatalf("presence: %s", b)
	}
	// Without -demo there is no token endpoint.
	r2 := startRun(t)
	if resp, _ := post(t, "http://"+r2.addr+"/demo/token", `{"name":"x"}`, nil); resp.StatusCode == 200 {
		t.Fatal("POST /demo/token served without -demo")
	}
}

func TestAPIMounted(t *testing.T) {
	keyFile := writeFile(t, "keys", "# the backend's key\napi-key-0123456789abcdef\n")
	r := startRun(t, "-api-path", "/api", "-api-key-file", keyFile)
	base := "http://" + r.addr
	if resp, body := post(t, base+"/api/info", `{}`, nil); resp.StatusCode != 401 {
		t.Fatalf("without a key: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, base+"/api/info", `{}`, http.Header{"X-Api-Key": {"wrong-key-0123456789abc"}}); resp.StatusCode != 403 {
		t.Fatalf("with a wrong key: %d %s", resp.StatusCode, body)
	}
	resp, body := post(t, base+"/api/info", `{}`, http.Header{"Authorization": {"apikey api-key-0123456789abcdef"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `"connections"`) {
		t.Fatalf("with the key: %d %s", resp.StatusCode, body)
	}
	ws := dialWS(t, r.addr, "")
	echo(t, ws, websocket.TextMessage, "still serving")
}
