package main

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
)

// The admin page at /admin (admin.secret, WSGATE_ADMIN_SECRET): off, 404, without a secret.
//
// An admin logs in by posting the secret; the answer sets a session cookie (HttpOnly,
// SameSite=Strict, Secure when the client's request is https, Path=/admin) signed with a key drawn at start, so that a
// restart logs everyone out, and gives a CSRF token. Every view calls the backend API
// (gateway/api) through /admin/api/…: that route checks the session, on POST the
// X-Wsgate-CSRF header too, strips whatever credentials the request carries and hands it to
// the API's own handler, in process, with an API key of its own, drawn at start and known to
// nobody outside the process. So the admin page can do exactly what the API can, with its
// validation, bounds and in-flight cap, whether or not the API is served on a listener too.
//
// Bounds: a login costs one SHA-256; attempts are limited per client address (loginBurst at
// once, then one every loginEvery), over at most loginAddrs addresses, the least recently seen
// giving way to a new one; at most maxSessions sessions are kept (the oldest gives way). The
// client's address and scheme are the WebSocket server's findings (-trusted-proxies believed).
// The secret is never logged or answered.

const (
	adminCookie   = "wsgate_admin"
	csrfHeader    = "X-Wsgate-Csrf"
	maxSessions   = 64
	loginBurst    = 5
	loginEvery    = 10 * time.Second
	loginAddrs    = 4096
	maxLoginBody  = 4 << 10
	adminBasePath = "/admin"
)

// adminCSP is the page's: scripts, styles and fetches of its own origin only, no inline script.
const adminCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// admin serves /admin and everything under it.
type admin struct {
	secret  [sha256.Size]byte // the secret's SHA-256, compared in constant time
	key     []byte            // signs the session cookies and derives the CSRF tokens
	ttl     time.Duration
	api     http.Handler // the backend API's handler
	apiBase string       // its BasePath
	apiKey  string       // the key it accepts from the admin page
	files   http.Handler // web/admin
	log     *slog.Logger
	now     func() time.Time
	// clientAddr and scheme are the client's address and the scheme it asked with, as the
	// WebSocket server finds them (wsgate.Server's, believing -trusted-proxies); by default the
	// peer's address and the listener's TLS.
	clientAddr func(*http.Request) netip.Addr
	scheme     func(*http.Request) string

	mu       sync.Mutex
	sessions map[string]time.Time // session id → expiry
	attempts map[netip.Prefix]*list.Element
	lru      list.List // of *bucket, the most recently used first
}

// bucket is one address's login attempts: tokens left at last.
type bucket struct {
	addr   netip.Prefix
	tokens float64
	last   time.Time
}

// newAdminKey draws the API key the admin page uses: 32 random bytes, hex.
func newAdminKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand: it panics rather)
	return hex.EncodeToString(b)
}

func newAdmin(secret string, ttl time.Duration, apiHandler http.Handler, apiBase, apiKey string, log *slog.Logger) *admin {
	files, err := fs.Sub(web, "web/admin")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &admin{secret: sha256.Sum256([]byte(secret)), key: key, ttl: ttl, api: apiHandler, apiBase: apiBase,
		apiKey: apiKey, files: http.StripPrefix(adminBasePath, http.FileServerFS(files)), log: log, now: time.Now,
		clientAddr: wsgate.ClientAddr, scheme: listenerScheme,
		sessions: map[string]time.Time{}, attempts: map[netip.Prefix]*list.Element{}}
}

// listenerScheme is the request's scheme, proxies not believed: https over TLS.
func listenerScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// secure tells whether the client asked over https: its cookies are then Secure.
func (a *admin) secure(r *http.Request) bool { return a.scheme(r) == "https" }

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", adminCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	p := r.URL.Path
	switch {
	case p == adminBasePath:
		http.Redirect(w, r, adminBasePath+"/", http.StatusFound)
	case p == adminBasePath+"/login":
		a.login(w, r)
	case p == adminBasePath+"/logout":
		a.logout(w, r)
	case p == adminBasePath+"/session":
		a.session(w, r)
	case strings.HasPrefix(p, adminBasePath+"/api/"):
		a.proxy(w, r)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		h.Set("Cache-Control", "no-cache")
		a.files.ServeHTTP(w, r)
	default:
		h.Set("Allow", "GET, HEAD")
		adminError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeAdminJSON(w, status, map[string]any{"error": map[string]any{"message": msg}})
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// login checks a posted secret (form field "secret"): 200 with the session cookie and the CSRF
// token, 401 when wrong, 429 with Retry-After beyond the address's attempts.
func (a *admin) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		adminError(w, http.StatusMethodNotAllowed, "POST the secret")
		return
	}
	if wait := a.allowLogin(r); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		adminError(w, http.StatusTooManyRequests, "too many login attempts from this address; retry later")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		adminError(w, http.StatusBadRequest, "want a form with the field secret")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("secret")))
	if subtle.ConstantTimeCompare(sum[:], a.secret[:]) != 1 {
		a.log.Warn("admin: login refused", "addr", a.clientAddr(r)) // never the secret tried
		adminError(w, http.StatusUnauthorized, "wrong secret")
		return
	}
	id, expiry := a.newSession()
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: a.sign(id, expiry), Path: adminBasePath + "/",
		Expires: expiry, MaxAge: int(a.ttl / time.Second), HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	a.log.Info("admin: logged in", "addr", a.clientAddr(r))
	writeAdminJSON(w, http.StatusOK, map[string]any{"csrf": a.csrf(id), "expires": expiry.Unix()})
}

// allowLogin takes one attempt from the client address's bucket; it returns how long to wait
// when there is none left. With loginAddrs addresses tracked, a new one takes the place of the
// least recently seen: whoever holds many addresses can spend only their own attempts, never
// lock out an address they do not hold.
func (a *admin) allowLogin(r *http.Request) time.Duration {
	addr := wsgate.ClientPrefix(a.clientAddr(r)) // as sockets and /ws count clients
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var b *bucket
	if e := a.attempts[addr]; e != nil {
		a.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		if a.lru.Len() >= loginAddrs {
			delete(a.attempts, a.lru.Remove(a.lru.Back()).(*bucket).addr)
		}
		b = &bucket{addr: addr, tokens: loginBurst, last: now}
		a.attempts[addr] = a.lru.PushFront(b)
	}
	b.tokens = min(loginBurst, b.tokens+now.Sub(b.last).Seconds()/loginEvery.Seconds())
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(loginEvery))
	}
	b.tokens--
	return 0
}

func (a *admin) newSession() (string, time.Time) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	now := a.now()
	expiry := now.Add(a.ttl).Truncate(time.Second)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.sessions {
		if !now.Before(exp) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= maxSessions { // the one ending first gives way
		var oldest string
		for k, exp := range a.sessions {
			if oldest == "" || exp.Before(a.sessions[oldest]) {
				oldest = k
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[id] = expiry
	return id, expiry
}

// sign makes the cookie's value: id.expiry.mac, the MAC over both with the process's key.
func (a *admin) sign(id string, expiry time.Time) string {
	payload := id + "." + strconv.FormatInt(expiry.Unix(), 10)
	return payload + "." + a.mac("session", payload)
}

func (a *admin) mac(purpose, s string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrf is the session's CSRF token: what its POSTs carry in X-Wsgate-Csrf.
func (a *admin) csrf(id string) string { return a.mac("csrf", id) }

// sessionOf returns the request's valid session id, or "".
func (a *admin) sessionOf(r *http.Request) string {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return ""
	}
	payload := parts[0] + "." + parts[1]
	if !hmac.Equal([]byte(parts[2]), []byte(a.mac("session", payload))) {
		return ""
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	now := a.now()
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.sessions[parts[0]]; !ok || !now.Before(e) {
		return "" // logged out, or given way
	}
	return parts[0]
}

// checkSession answers 401 without a session and 403 for a POST without the session's CSRF
// token; it returns the session id when the request may go on.
func (a *admin) checkSession(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := a.sessionOf(r)
	if id == "" {
		adminError(w, http.StatusUnauthorized, "log in first")
		return "", false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(csrfHeader)
		if !hmac.Equal([]byte(got), []byte(a.csrf(id))) {
			adminError(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header")
			return "", false
		}
	}
	return id, true
}

// session tells the page whether it is logged in, and its CSRF token.
func (a *admin) session(w http.ResponseWriter, r *http.Request) {
	id, ok := a.checkSession(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	exp := a.sessions[id]
	a.mu.Unlock()
	writeAdminJSON(w, http.StatusOK, map[string]any{"csrf": a.csrf(id), "expires": exp.Unix()})
}

// logout ends the session (POST with its CSRF token) and clears the cookie.
func (a *admin) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		adminError(w, http.StatusMethodNotAllowed, "POST to log out")
		return
	}
	id, ok := a.checkSession(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	delete(a.sessions, id)
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: adminBasePath + "/", MaxAge: -1,
		HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	writeAdminJSON(w, http.StatusOK, map[string]any{})
}

// proxy hands /admin/api/X to the backend API's X with the admin page's key, once the session
// (and on POST its CSRF token) is checked. The request's own credentials and cookies are dropped.
func (a *admin) proxy(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.checkSession(w, r); !ok {
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = a.apiBase + strings.TrimPrefix(r.URL.Path, adminBasePath+"/api")
	r2.URL.RawPath = ""
	r2.RequestURI = ""
	for _, k := range []string{"Authorization", "X-Api-Key", "Cookie", csrfHeader, "Traceparent", "Tracestate"} {
		r2.Header.Del(k)
	}
	r2.Header.Set("X-Api-Key", a.apiKey)
	w.Header().Set("Cache-Control", "no-store")
	a.api.ServeHTTP(w, r2)
}
