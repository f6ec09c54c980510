package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The admin login's limits and cookie behind proxies and under many addresses.

// An attacker holding loginAddrs addresses (4096 IPv6 /64s: a /52) drains one bucket
// each; from then on every other address, the real admin's included, gets 429 on its first
// attempt, had the full table refused new addresses. The least recently seen gives way instead;
// the table stays bounded.
func TestAdminLoginTableFullEvictsLeastRecent(t *testing.T) {
	adm := newAdmin(adminSecret, time.Minute, http.NotFoundHandler(), "/api", "k", slog.New(slog.DiscardHandler))
	now := time.Now()
	adm.now = func() time.Time { return now }
	for i := range loginAddrs {
		r := httptest.NewRequest("POST", "/admin/login", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8:%x:%x::1]:1234", i>>8, i&0xff)
		for range loginBurst {
			adm.allowLogin(r)
		}
	}
	admin := httptest.NewRequest("POST", "/admin/login", strings.NewReader("secret="+adminSecret))
	admin.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	admin.RemoteAddr = "192.0.2.10:5555"
	w := httptest.NewRecorder()
	adm.ServeHTTP(w, admin)
	if w.Code != http.StatusOK {
		t.Fatalf("the admin's first login from an address never seen: %d %s, want 200 (locked out by other addresses)", w.Code, w.Body)
	}
	if n := len(adm.attempts); n != loginAddrs || adm.lru.Len() != loginAddrs {
		t.Fatalf("%d addresses tracked (%d in the LRU list), want the table bounded at %d", n, adm.lru.Len(), loginAddrs)
	}
}

// Behind -trusted-proxies the server knows each client's address (X-Forwarded-For),
// and so does the admin login's limiter: counting the proxy's address instead, an anonymous
// attacker's 5 wrong guesses every 10 s would lock every admin out. The refusals are logged with
// the client's address.
func TestAdminLoginLimitPerClientBehindTrustedProxy(t *testing.T) {
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret), "-trusted-proxies", "127.0.0.1,::1")
	a := newAdminClient(t, "http://"+r.addr, nil)
	attacker := http.Header{"X-Forwarded-For": {"203.0.113.5"}}
	for range loginBurst {
		a.do(http.MethodPost, "/admin/login", "secret=wrong-secret-0123456789abcdef", attacker)
	}
	resp, body := a.do(http.MethodPost, "/admin/login", "secret="+adminSecret, http.Header{"X-Forwarded-For": {"198.51.100.7"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the admin, another client behind the trusted proxy: %d %s, want 200", resp.StatusCode, body)
	}
	if r.logs.find("admin: login refused", map[string]any{"addr": "203.0.113.5"}) == nil {
		t.Errorf("refused logins not logged with the client's address:\n%s", r.logs)
	}
}

// Without -trusted-proxies, X-Forwarded-For is anyone's say: the limiter counts the peer.
func TestAdminLoginLimitIgnoresUntrustedForwardedFor(t *testing.T) {
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret))
	a := newAdminClient(t, "http://"+r.addr, nil)
	for i := range loginBurst {
		a.do(http.MethodPost, "/admin/login", "secret=wrong-secret-0123456789abcdef", http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i)}})
	}
	resp, body := a.do(http.MethodPost, "/admin/login", "secret="+adminSecret, http.Header{"X-Forwarded-For": {"198.51.100.7"}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For from an untrusted peer: %d %s, want 429", resp.StatusCode, body)
	}
}

// Behind a TLS-terminating proxy listed in -trusted-proxies (X-Forwarded-Proto: https, which the
// server believes for /ws's origin checks), the admin session cookie is Secure: else the browser
// would send it on any plain http:// request to the host (a port-80 redirect), in clear. The
// same header from an untrusted peer is not believed. (Listener TLS: TestAdminCookieSecureAndExpiring.)
func TestAdminCookieSecureBehindTrustedTLSProxy(t *testing.T) {
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret), "-trusted-proxies", "127.0.0.1,::1")
	a := newAdminClient(t, "http://"+r.addr, nil)
	resp, body := a.do(http.MethodPost, "/admin/login", "secret="+adminSecret, http.Header{"X-Forwarded-Proto": {"https"}})
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if !resp.Cookies()[0].Secure {
		t.Fatal("session cookie set for an https client (trusted X-Forwarded-Proto) without Secure")
	}

	u := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret))
	resp, body = newAdminClient(t, "http://"+u.addr, nil).do(http.MethodPost, "/admin/login", "secret="+adminSecret,
		http.Header{"X-Forwarded-Proto": {"https"}})
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || resp.Cookies()[0].Secure {
		t.Fatalf("login with X-Forwarded-Proto from an untrusted peer: %d %s %v, want a cookie without Secure", resp.StatusCode, body, resp.Cookies())
	}
}
