package main

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

const adminSecret = "admin-secret-0123456789abcdef"

// adminClient is a browser-like client of one server: a cookie jar, and the CSRF token of the
// last login.
type adminClient struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newAdminClient(t *testing.T, base string, tr *http.Transport) *adminClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	if tr == nil {
		tr = &http.Transport{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &adminClient{t: t, base: base, c: &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request to path with body (form or JSON, by its first byte) and headers.
func (a *adminClient) do(method, path, body string, h http.Header) (*http.Response, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" {
		ct := "application/x-www-form-urlencoded"
		if body[0] == '{' {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (a *adminClient) login(secret string) (*http.Response, string) {
	a.t.Helper()
	resp, body := a.do(http.MethodPost, "/admin/login", url.Values{"secret": {secret}}.Encode(), nil)
	if resp.StatusCode == 200 {
		var s struct{ CSRF string }
		if err := json.Unmarshal([]byte(body), &s); err != nil || s.CSRF == "" {
			a.t.Fatalf("login answered %s", body)
		}
		a.csrf = s.CSRF
	}
	return resp, body
}

func (a *adminClient) withCSRF() http.Header { return http.Header{"X-Wsgate-Csrf": {a.csrf}} }

// Without admin.secret there is no admin page: every path under /admin is 404, even the
// embedded files.
func TestAdminOffWithoutSecret(t *testing.T) {
	r := startRun(t)
	a := newAdminClient(t, "http://"+r.addr, nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/admin"}, {"GET", "/admin/"}, {"GET", "/admin/index.html"}, {"GET", "/admin/admin.js"},
		{"GET", "/admin/uplot/uPlot.iife.min.js"}, {"GET", "/admin/session"}, {"POST", "/admin/login"}, {"POST", "/admin/api/info"},
	} {
		if resp, body := a.do(tc.method, tc.path, "", nil); resp.StatusCode != 404 {
			t.Errorf("%s %s = %d %.80q, want 404", tc.method, tc.path, resp.StatusCode, body)
		}
	}
}

// The login, the session cookie and its flags, the CSRF header, the proxy to the API, logout;
// and that the secret is never written to a log.
func TestAdminSession(t *testing.T) {
	apiKey := "api-key-0123456789abcdef"
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret+"\n"),
		"-api-path", "/api", "-api-key-file", writeFile(t, "keys", apiKey+"\n"))
	base := "http://" + r.addr
	a := newAdminClient(t, base, nil)

	resp, body := a.do("GET", "/admin/", "", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script type="module" src="admin.js">`) ||
		!strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("GET /admin/ = %d, CSP %q", resp.StatusCode, csp)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " on") && strings.Contains(body, `onclick=`) {
		t.Error("the page has an inline script")
	}
	for _, p := range []string{"/admin/session", "/admin/api/info"} {
		method := "GET"
		if strings.Contains(p, "api") {
			method = "POST"
		}
		if resp, body := a.do(method, p, "{}", nil); resp.StatusCode != 401 {
			t.Errorf("%s %s without a session = %d %s, want 401", method, p, resp.StatusCode, body)
		}
	}
	if resp, body := a.login("admin-secret-0123456789abcdeX"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong secret: %d %s %v, want 401 without a cookie", resp.StatusCode, body, resp.Cookies())
	}
	resp, body = a.login(adminSecret)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/admin/" || c.MaxAge <= 0 ||
		c.Expires.IsZero() || strings.Contains(c.Value, adminSecret) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path=/admin/, expiring", c)
	}

	// A POST needs the CSRF header of this session.
	for _, h := range []http.Header{nil, {"X-Wsgate-Csrf": {"x" + a.csrf}}} {
		if resp, body := a.do("POST", "/admin/api/info", "{}", h); resp.StatusCode != 403 {
			t.Errorf("POST /admin/api/info with CSRF %v: %d %s, want 403", h, resp.StatusCode, body)
		}
	}
	resp, body = a.do("POST", "/admin/api/info", "{}", a.withCSRF())
	if resp.StatusCode != 200 || !strings.Contains(body, `"connections":0`) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST /admin/api/info: %d %s", resp.StatusCode, body)
	}
	// Credentials the request brings are dropped: the API sees only the admin page's key.
	h := a.withCSRF()
	h.Set("X-Api-Key", "wrong-key-0123456789abcdef")
	if resp, body := a.do("POST", "/admin/api/info", "{}", h); resp.StatusCode != 200 {
		t.Errorf("with an X-Api-Key of its own: %d %s", resp.StatusCode, body)
	}
	// The API's errors come through: a bad channel is the API's 400.
	if resp, body := a.do("POST", "/admin/api/publish", `{"channel":"","data":1}`, a.withCSRF()); resp.StatusCode != 400 || !strings.Contains(body, `"code"`) {
		t.Errorf("publish to no channel: %d %s", resp.StatusCode, body)
	}
	// The session is not a credential of the API itself.
	if resp, _ := a.do("POST", "/api/info", "{}", a.withCSRF()); resp.StatusCode != 401 {
		t.Errorf("the API mounted at /api took the admin session: %d", resp.StatusCode)
	}
	// The backend's key still works on the API.
	if resp, body := post(t, base+"/api/info", "{}", http.Header{"X-Api-Key": {apiKey}}); resp.StatusCode != 200 {
		t.Errorf("the backend's key: %d %s", resp.StatusCode, body)
	}
	if resp, body := a.do("GET", "/admin/session", "", nil); resp.StatusCode != 200 || !strings.Contains(body, a.csrf) {
		t.Errorf("GET /admin/session: %d %s", resp.StatusCode, body)
	}

	// A cookie changed by its holder is refused: another expiry, another id.
	u, _ := url.Parse(base + "/admin/")
	parts := strings.Split(c.Value, ".")
	for _, forged := range []string{parts[0] + "." + "9999999999" + "." + parts[2], "A" + parts[0][1:] + "." + parts[1] + "." + parts[2], "x"} {
		f := newAdminClient(t, base, nil)
		f.c.Jar.SetCookies(u, []*http.Cookie{{Name: adminCookie, Value: forged, Path: "/admin/"}})
		if resp, _ := f.do("GET", "/admin/session", "", nil); resp.StatusCode != 401 {
			t.Errorf("forged cookie %q: %d, want 401", forged, resp.StatusCode)
		}
	}

	// Logout needs the CSRF header, then the session is over even for a copy of the cookie.
	if resp, _ := a.do("POST", "/admin/logout", "", nil); resp.StatusCode != 403 {
		t.Errorf("logout without CSRF: %d, want 403", resp.StatusCode)
	}
	resp, _ = a.do("POST", "/admin/logout", "", a.withCSRF())
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Cookies())
	}
	copyOf := newAdminClient(t, base, nil)
	copyOf.c.Jar.SetCookies(u, []*http.Cookie{{Name: adminCookie, Value: c.Value, Path: "/admin/"}})
	if resp, _ := copyOf.do("GET", "/admin/session", "", nil); resp.StatusCode != 401 {
		t.Errorf("the cookie after logout: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(r.logs.String(), adminSecret) || strings.Contains(r.logs.String(), "0123456789abcdeX") {
		t.Errorf("a secret reached the log:\n%s", r.logs)
	}
	if r.logs.find("admin: login refused", nil) == nil || r.logs.find("admin: logged in", nil) == nil {
		t.Errorf("logins not logged:\n%s", r.logs)
	}
}

// Login attempts are limited per address: after loginBurst, 429 with Retry-After, even for the
// right secret.
func TestAdminLoginRateLimit(t *testing.T) {
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret))
	a := newAdminClient(t, "http://"+r.addr, nil)
	for i := range loginBurst {
		if resp, _ := a.login("wrong-secret-0123456789abcdef"); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := a.login(adminSecret)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || len(resp.Cookies()) != 0 {
		t.Fatalf("attempt %d: %d %s (Retry-After %q), want 429", loginBurst+1, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// The cookie is Secure under TLS, and the session expires.
func TestAdminCookieSecureAndExpiring(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir, "localhost")
	r := startRun(t, "-admin-secret-file", writeFile(t, "admin", adminSecret), "-tls-cert", cert, "-tls-key", key)
	a := newAdminClient(t, "https://"+r.addr, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	resp, body := a.login(adminSecret)
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Fatalf("login over TLS: %d %s %v, want a Secure cookie", resp.StatusCode, body, resp.Cookies())
	}

	// Expiry, on the handler with its clock moved.
	adm := newAdmin(adminSecret, time.Minute, http.NotFoundHandler(), "/api", "k", slog.New(slog.DiscardHandler))
	now := time.Now()
	adm.now = func() time.Time { return now }
	id, exp := adm.newSession()
	req, _ := http.NewRequest("GET", "/admin/session", nil)
	req.AddCookie(&http.Cookie{Name: adminCookie, Value: adm.sign(id, exp)})
	if adm.sessionOf(req) != id {
		t.Fatal("a fresh session not recognised")
	}
	now = now.Add(time.Minute + time.Second)
	if adm.sessionOf(req) != "" {
		t.Fatal("a session recognised after its expiry")
	}
}

// admin.secret comes from WSGATE_ADMIN_SECRET or admin.secret_file, at least 16 bytes, not both.
func TestAdminConfig(t *testing.T) {
	file := writeFile(t, "admin", adminSecret)
	for _, tc := range []struct {
		yaml string
		env  map[string]string
		want string // "" ok
	}{
		{"admin:\n  secret_file: " + file + "\n", nil, ""},
		{"read-limit: 1024\n", map[string]string{"WSGATE_ADMIN_SECRET": adminSecret}, ""},
		{"read-limit: 1024\n", map[string]string{"WSGATE_ADMIN_SECRET": "short"}, "admin.secret: 5 bytes"},
		{"admin:\n  secret_file: " + file + "\n", map[string]string{"WSGATE_ADMIN_SECRET": adminSecret}, "admin.secret_file: give the secret or its file"},
		{"admin:\n  session_ttl: 1h\n", nil, "admin.session_ttl: means nothing"},
		{"api:\n  path: /admin\n  keys: [api-key-0123456789abcdef]\n", nil, "api.path"},
	} {
		out, err := checkFile(t, writeFile(t, "c.yaml", tc.yaml), tc.env)
		if tc.want == "" && err != nil || tc.want != "" && !strings.Contains(out, tc.want) {
			t.Errorf("%q %v: %v %q, want %q", tc.yaml, tc.env, err, out, tc.want)
		}
		if strings.Contains(out, adminSecret) {
			t.Errorf("the check repeated the secret: %q", out)
		}
	}
}
