package gateway_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/jwtauth"
	"github.com/wsgate/wsgate/protocol"
)

// When the JWKS cannot be fetched, any client (no credentials needed: a token signed by a key
// of its own, with a kid the set lacks) is told the key set's URL and its answer in the connect
// error (and in a raw upgrade's 401 body): an internal address, and whatever the URL carries.
// gateway/events and gateway/proxy keep URLs out of what they report; jwtauth quotes it.
func TestJWKSFailureStaysServerSide(t *testing.T) {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer idp.Close()
	jwksURL := idp.URL + "/internal/jwks.json?access=s3cr3t"
	var logs syncBuffer
	s := startLogged(t, &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{JWKSURL: jwksURL}}}, nil,
		slog.New(slog.NewTextHandler(&logs, nil)))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwtauth.Signer{Alg: jwtauth.RS256, Key: key, KID: "attacker"}.Mint(jwtauth.Claims{User: "x", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the first fetch has failed
	c := dialV1(t, s.url, nil)
	e := c.fails(map[string]any{"op": "connect", "token": tok}, protocol.CodeUnauthorized)
	if strings.Contains(e.Message, "s3cr3t") || strings.Contains(e.Message, idp.URL) {
		t.Errorf("the connect error quotes the JWKS URL: %q", e.Message)
	}
	_, body, _ := refused(t, s.url, http.Header{"Authorization": {"Bearer " + tok}})
	if strings.Contains(body, "s3cr3t") || strings.Contains(body, idp.URL) {
		t.Errorf("the raw upgrade's 401 body quotes the JWKS URL: %q", body)
	}
	// The operator is told, with the URL's query (where a credential may be) left out.
	if l := logs.String(); !strings.Contains(l, "JWKS fetch failed") || !strings.Contains(l, "500") ||
		!strings.Contains(l, idp.URL+"/internal/jwks.json") || strings.Contains(l, "s3cr3t") {
		t.Errorf("the log does not tell the operator (or quotes the query): %s", l)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
