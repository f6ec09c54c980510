package main

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wsgate/wsgate/gateway"
)

// The demo (wsgate serve -demo): POST /demo/token signs a token for any name asked, so that the
// chat page joins as the nickname typed and presence lists names. Anyone may take any name:
// it is labelled insecure in the log at start and on every page.

const (
	demoWarning     = "INSECURE DEMO: POST /demo/token gives anyone a token for any name. Never run -demo where it matters."
	maxDemoName     = 32   // bytes of a demo nickname
	maxDemoBodySize = 1024 // bytes of a /demo/token request
)

// demoConfig returns the gateway's config for the server: cfg itself without -demo; with it, a
// copy that verifies the demo's tokens (the configured HS256 secret, else a random one for the
// life of the process) and lets connections without a token in as anonymous when nothing else
// asked for identity. The handler is the demo's token endpoint, nil without -demo.
func demoConfig(cfg *gateway.Config, log *slog.Logger) (*gateway.Config, http.Handler, error) {
	if !cfg.Demo.Enabled {
		return cfg, nil, nil
	}
	log.Warn(demoWarning)
	c := *cfg
	j := &c.Auth.JWT
	secret, err := j.Secret()
	if err != nil {
		return nil, nil, err
	}
	if secret == nil {
		if j.Configured() {
			return nil, nil, errors.New("demo.enabled: the demo signs HS256 tokens: set auth.jwt.hmac_secret (or its file) beside the public keys")
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		j.HMACSecret = hex.EncodeToString(key)
		secret = []byte(j.HMACSecret)
		c.Auth.Anonymous = c.Auth.ConnectURL == "" // the console page connects without a name
	}
	ttl := cmp.Or(c.Demo.TokenTTL, gateway.DefaultDemoTokenTTL)
	return &c, demoTokens(secret, ttl, log), nil
}

// demoTokens answers POST /demo/token {"name":"alice"} with {"token":"...","warning":"..."}: a
// token for user alice, info {"name":"alice"}. The body is bounded (maxDemoBodySize) and the
// name checked: 1 to maxDemoName bytes of printable UTF-8, no '#' or ',' (user channel names).
func demoTokens(secret []byte, ttl time.Duration, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		var req struct {
			Name string `json:"name"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDemoBodySize))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, `want a JSON body {"name":"..."} of at most 1024 bytes`, http.StatusBadRequest)
			return
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			http.Error(w, "one JSON object only", http.StatusBadRequest)
			return
		}
		name := strings.TrimSpace(req.Name)
		if msg := checkDemoName(name); msg != "" {
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
		info, _ := json.Marshal(map[string]string{"name": name})
		token, err := mintToken(secret, name, ttl, info, nil)
		if err != nil {
			log.Error("demo token", "err", err)
			http.Error(w, "cannot sign", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": token, "expires_in": int64(ttl / time.Second), "warning": demoWarning})
	})
}

func checkDemoName(name string) string {
	switch {
	case name == "":
		return "name required"
	case len(name) > maxDemoName:
		return "name longer than 32 bytes"
	case !utf8.ValidString(name):
		return "name is not UTF-8"
	case strings.ContainsAny(name, "#,"):
		return "name cannot hold '#' or ','"
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "name holds a character that is not printable"
		}
	}
	return ""
}

// demoBanner labels the HTML pages insecure: a banner after <body>.
func demoBanner(page http.Handler) http.Handler {
	banner := []byte(`<body><p class="demo-warning" role="alert"><strong>` + demoWarning + `</strong></p>`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "/" && !strings.HasSuffix(p, ".html") {
			page.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: w.Header()}
		page.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		if rec.status == 0 || rec.status == http.StatusOK {
			body = bytes.Replace(body, []byte("<body>"), banner, 1)
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(cmp.Or(rec.status, http.StatusOK))
		_, _ = w.Write(body)
	})
}

// bufferedResponse holds a response to rewrite it (the embedded pages: a few KiB).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
