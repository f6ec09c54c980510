package jwtauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// TestPEMForms: PKIX, PKCS#1 and certificate blocks all give a key that verifies, and
// ParsePublicKeyPEM names its algorithm.
func TestPEMForms(t *testing.T) {
	rk := rsaKeys()[0]
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backend"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(-time.Minute)} // expired: not our business
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKeys()[0].PublicKey, ecKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pem  []byte
		alg  string
		s    jwtauth.Signer
	}{
		{"PKIX RSA", pemOf(t, &rk.PublicKey), jwtauth.RS256, jwtauth.Signer{Alg: jwtauth.RS256, Key: rk}},
		{"PKCS1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}), jwtauth.RS256, jwtauth.Signer{Alg: jwtauth.RS256, Key: rk}},
		{"PKIX EC", pemOf(t, &ecKeys()[0].PublicKey), jwtauth.ES256, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0]}},
		{"certificate EC", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), jwtauth.ES256, jwtauth.Signer{Alg: jwtauth.ES256, Key: ecKeys()[0]}},
		{"PKIX Ed25519", pemOf(t, edKeys()[0].Public()), jwtauth.EdDSA, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, alg, err := jwtauth.ParsePublicKeyPEM(c.pem); err != nil || alg != c.alg {
				t.Fatalf("ParsePublicKeyPEM = %s, %v; want %s", alg, err, c.alg)
			}
			v := newVerifier(t, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{{KID: "k", PEM: c.pem}}})
			c.s.KID = "k"
			if _, err := v.Verify(ctx, mint(t, c.s, alice())); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// TestPEMRefused: weak, unsupported and private keys never become verification keys.
func TestPEMRefused(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	priv, _ := x509.MarshalPKCS8PrivateKey(ecKeys()[0])
	two := append(pemOf(t, &ecKeys()[0].PublicKey), pemOf(t, &ecKeys()[1].PublicKey)...)
	for name, c := range map[string]struct {
		pem    []byte
		reason string
	}{
		"RSA 1024":     {pemOf(t, &small.PublicKey), "at least 2048"},
		"EC P-384":     {pemOf(t, &p384.PublicKey), "only P-256"},
		"private key":  {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), "is a private key"},
		"two blocks":   {two, "more than one PEM block"},
		"not PEM":      {[]byte("-----BEGIN nothing"), "no PEM block"},
		"garbage body": {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), "PUBLIC KEY"},
		"other block":  {pem.EncodeToMemory(&pem.Block{Type: "OPENSSH KEY", Bytes: []byte("x")}), "want PUBLIC KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := jwtauth.New(ctx, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{{PEM: c.pem}}})
			if !errors.Is(err, jwtauth.ErrConfig) || !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "PublicKeys[0]") {
				t.Fatalf("New = %v; want ErrConfig saying %q", err, c.reason)
			}
		})
	}
}

// TestLoadPEMFile: a key file loads with its kid; a missing, oversized or bad file is reported
// with its name.
func TestLoadPEMFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "key.pem")
	os.WriteFile(good, pemOf(t, edKeys()[0].Public()), 0o600)
	pk, err := jwtauth.LoadPEMFile(good, "ed1")
	if err != nil || pk.KID != "ed1" {
		t.Fatalf("LoadPEMFile = %+v, %v", pk, err)
	}
	v := newVerifier(t, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{pk}})
	if _, err := v.Verify(ctx, mint(t, jwtauth.Signer{Alg: jwtauth.EdDSA, Key: edKeys()[0], KID: "ed1"}, alice())); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	big := filepath.Join(dir, "big.pem")
	os.WriteFile(big, []byte(strings.Repeat("x", 65<<10)), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	for _, path := range []string{filepath.Join(dir, "missing.pem"), big, bad} {
		if _, err := jwtauth.LoadPEMFile(path, ""); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Fatalf("LoadPEMFile(%s) = %v", path, err)
		}
	}
}

// TestLoadSecretFile: a secret file loses its final line break, and a short one is refused.
func TestLoadSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	os.WriteFile(path, append(append([]byte(nil), secret...), "\r\n"...), 0o600)
	got, err := jwtauth.LoadSecretFile(path)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("LoadSecretFile = %q, %v", got, err)
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := jwtauth.LoadSecretFile(path); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short secret: %v", err)
	}
}

// TestConfigErrors: a Config New cannot use is refused with ErrConfig and says why.
func TestConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		cfg    jwtauth.Config
		reason string
	}{
		"no key":           {jwtauth.Config{}, "no key"},
		"short secret":     {jwtauth.Config{Secret: []byte("short")}, "at least 32"},
		"leeway":           {jwtauth.Config{Secret: secret, Leeway: time.Hour}, "Leeway"},
		"alg none":         {jwtauth.Config{Secret: secret, Algorithms: []string{"none"}}, `"none"`},
		"alg HS512":        {jwtauth.Config{Secret: secret, Algorithms: []string{"HS512"}}, `"HS512"`},
		"alg without key":  {jwtauth.Config{Secret: secret, Algorithms: []string{jwtauth.RS256}}, "no key can check it"},
		"jwks over http":   {jwtauth.Config{JWKSURL: "http://idp.example.com/jwks"}, "plain http"},
		"jwks ftp":         {jwtauth.Config{JWKSURL: "ftp://idp.example.com/jwks"}, "scheme"},
		"jwks no host":     {jwtauth.Config{JWKSURL: "https:///jwks"}, "no host"},
		"jwks refresh":     {jwtauth.Config{JWKSURL: "https://idp.example.com/jwks", JWKSRefresh: time.Millisecond}, "JWKSRefresh"},
		"jwks min refetch": {jwtauth.Config{JWKSURL: "https://idp.example.com/jwks", JWKSMinRefetch: -time.Second}, "JWKSMinRefetch"},
		"max channels":     {jwtauth.Config{Secret: secret, MaxChannels: -1}, "MaxChannels"},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := jwtauth.New(ctx, c.cfg)
			if err == nil {
				v.Close()
			}
			if !errors.Is(err, jwtauth.ErrConfig) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("New = %v; want ErrConfig saying %q", err, c.reason)
			}
		})
	}
	// Plain http is fine to a loopback host, and anywhere when asked for.
	for _, c := range []jwtauth.Config{
		{JWKSURL: "http://127.0.0.1:1/jwks", JWKSTimeout: time.Second},
		{JWKSURL: "http://localhost:1/jwks", JWKSTimeout: time.Second},
		{JWKSURL: "http://idp.internal:1/jwks", JWKSInsecureHTTP: true, JWKSTimeout: time.Second},
	} {
		v, err := jwtauth.New(ctx, c)
		if err != nil {
			t.Fatalf("New(%s): %v", c.JWKSURL, err)
		}
		v.Close()
	}
}

// TestConfigCopied: changing the Config's slices after New changes nothing.
func TestConfigCopied(t *testing.T) {
	sec := append([]byte(nil), secret...)
	v := newVerifier(t, jwtauth.Config{Secret: sec})
	tok := mint(t, jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}, alice())
	copy(sec, secret2)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify after the caller changed its secret: %v", err)
	}
}

// TestKidSelection: a token's kid picks its key; an unknown kid falls back to the keys
// configured without a KID; a token without kid tries every configured key of its alg.
func TestKidSelection(t *testing.T) {
	r := rsaKeys()
	sign := func(i int, kid string) string {
		return mint(t, jwtauth.Signer{Alg: jwtauth.RS256, Key: r[i], KID: kid}, alice())
	}
	v := newVerifier(t, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{
		{KID: "a", PEM: pemOf(t, &r[0].PublicKey)},
		{KID: "b", PEM: pemOf(t, &r[1].PublicKey)},
	}})
	for name, c := range map[string]struct {
		tok string
		ok  bool
	}{
		"a with a":       {sign(0, "a"), true},
		"b with b":       {sign(1, "b"), true},
		"b claiming a":   {sign(1, "a"), false},
		"unknown kid":    {sign(0, "zzz"), false},
		"no kid, a":      {sign(0, ""), true},
		"no kid, b":      {sign(1, ""), true},
		"no kid, other":  {sign(2, ""), false},
		"kid of other":   {sign(2, "a"), false},
		"kid not string": {"", false},
	} {
		t.Run(name, func(t *testing.T) {
			tok := c.tok
			if name == "kid not string" {
				parts := strings.Split(sign(0, "a"), ".")
				tok = b64.EncodeToString([]byte(`{"alg":"RS256","kid":["a"]}`)) + "." + parts[1] + "." + parts[2]
			}
			_, err := v.Verify(ctx, tok)
			if c.ok != (err == nil) {
				t.Fatalf("Verify = %v, want ok %v", err, c.ok)
			}
		})
	}
	// A key without KID serves kids no other key claims.
	w := newVerifier(t, jwtauth.Config{PublicKeys: []jwtauth.PublicKey{
		{KID: "a", PEM: pemOf(t, &r[0].PublicKey)},
		{PEM: pemOf(t, &r[2].PublicKey)},
	}})
	if _, err := w.Verify(ctx, sign(2, "rotated-2026")); err != nil {
		t.Fatalf("wildcard key: %v", err)
	}
	if _, err := w.Verify(ctx, sign(2, "a")); !errors.Is(err, jwtauth.ErrInvalid) {
		t.Fatalf("wildcard key used for a kid another key claims: %v", err)
	}
}

// TestCloseWithoutJWKS: Close without a JWKS is a no-op, twice.
func TestCloseWithoutJWKS(t *testing.T) {
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if v.Close() != nil || v.Close() != nil || v.Refresh(ctx) != nil {
		t.Fatal("Close or Refresh without JWKS returned an error")
	}
}
