package gateway_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
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
func TestReviewJWKSURLLeaksToClients(t *testing.T) {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer idp.Close()
	jwksURL := idp.URL + "/internal/jwks.json?access=s3cr3t"
	s := start(t, &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{JWKSURL: jwksURL}}}, nil)
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
}
