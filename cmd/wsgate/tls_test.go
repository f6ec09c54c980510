package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files into dir and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "server")
	r := startRun(t, "-tls-cert", certFile, "-tls-key", keyFile)
	if r.logs.find("listening", map[string]any{"url": "https://" + r.addr + "/"}) == nil {
		t.Errorf("the listening log does not give the https:// URL; logs:\n%s", r.logs)
	}
	tlsConf := &tls.Config{RootCAs: pool}

	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + r.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="open"`) {
		t.Fatalf("GET https:// / = %d, body %.80q", resp.StatusCode, body)
	}
	if resp.Proto != "HTTP/1.1" { // HTTP/2 could not carry the upgrade the page asks for next
		t.Errorf("negotiated %s, want HTTP/1.1", resp.Proto)
	}

	// The page's origin is https://addr: its WebSocket is wss:// to the same host.
	d := websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("wss://"+r.addr+"/ws", http.Header{"Origin": {"https://" + r.addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	echo(t, ws, websocket.TextMessage, "Hello!")
	echo(t, ws, websocket.BinaryMessage, strings.Repeat("x", 60<<10)) // just under the default read limit

}

func TestServeTLSBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "a")
	otherCert, _, _ := selfSigned(t, dir, "b")
	notPEM := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"-tls-cert", certFile}, "-tls-cert and -tls-key go together"},
		{"key without cert", []string{"-tls-key", keyFile}, "-tls-cert and -tls-key go together"},
		{"missing file", []string{"-tls-cert", filepath.Join(dir, "nope.crt"), "-tls-key", keyFile}, "nope.crt: no such file"},
		{"key of another certificate", []string{"-tls-cert", otherCert, "-tls-key", keyFile}, "private key does not match public key"},
		{"not PEM", []string{"-tls-cert", notPEM, "-tls-key", keyFile}, "failed to find any PEM data in certificate input"},
		{"files swapped", []string{"-tls-cert", keyFile, "-tls-key", certFile}, "PEM inputs may have been switched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"serve", "-addr", "127.0.0.1:0"}, tc.args...), noEnv, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tc.want)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (configuration)", code)
			}
			if strings.Contains(stderr.String(), "listening") {
				t.Errorf("listened despite the bad configuration: %s", &stderr)
			}
		})
	}
}

// TestBenchOverTLS: the load generator reaches a wss:// server whose self-signed certificate -ca
// names (how the TLS path's memory is measured), and without -ca the certificate is refused.
func TestBenchOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "server")
	r := startRun(t, "-tls-cert", certFile, "-tls-key", keyFile)
	url := "wss://" + r.addr + "/ws"
	out, err := runBenchT(t, nil, "idle", "-url", url, "-c", "5", "-duration", "200ms", "-ca", certFile)
	if err != nil || !strings.Contains(out, "5 of 5 open") {
		t.Fatalf("idle over wss with -ca: %v\n%s", err, out)
	}
	out, err = runBenchT(t, nil, "idle", "-url", url, "-c", "1", "-duration", "200ms", "-connect-timeout", "2s")
	if err == nil || !strings.Contains(out+err.Error(), "certificate") {
		t.Fatalf("idle over wss without -ca: %v\n%s; want the certificate refused", err, out)
	}
	if _, err := runBenchT(t, nil, "idle", "-url", url, "-c", "1", "-ca", keyFile); err == nil || exitCode(err) != 2 {
		t.Fatalf("-ca naming a key, not a certificate: %v; want a usage error", err)
	}
}
