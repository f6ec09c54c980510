package api_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/protocol"
)

// TestNewRefusesNoKey: an API without a key does not start unless Insecure says so; a key a
// header cannot carry is refused at start, not at the first request.
func TestNewRefusesNoKey(t *testing.T) {
	node := &hubNode{}
	for _, o := range []api.Options{
		{},
		{Keys: []string{}},
		{Keys: []string{""}},
		{Keys: []string{"good-key", ""}},
		{Keys: []string{"has space"}},
		{Keys: []string{"tab\tkey"}},
		{Keys: []string{"ключ"}},
		{Keys: []string{"k"}, BasePath: "/"},
		{Keys: []string{"k"}, BasePath: "api"},
		{Keys: []string{"k"}, Timeout: -1},
	} {
		if _, err := api.New(node, o); !errors.Is(err, api.ErrOptions) {
			t.Errorf("New(%+v): %v, want ErrOptions", o, err)
		}
	}
	if _, err := api.New(nil, api.Options{Keys: []string{"k"}}); !errors.Is(err, api.ErrOptions) {
		t.Errorf("New(nil node): %v", err)
	}
	if _, err := api.New(node, api.Options{Insecure: true, Logger: quiet}); err != nil {
		t.Errorf("New(Insecure): %v", err)
	}
}

// TestInsecureServesWithoutKey: Insecure and no keys: served without a key.
func TestInsecureServesWithoutKey(t *testing.T) {
	e := newEnv(t, &api.Options{Insecure: true})
	if a := e.do(http.MethodPost, "/api/info", "{}", map[string]string{"Authorization": ""}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
}

// TestAuth: every way of not presenting the key gets its documented answer, and the key is
// never echoed; a valid key in either header, or any of several keys, gets in.
func TestAuth(t *testing.T) {
	e := newEnv(t, &api.Options{Keys: []string{testKey, "second-key"}})
	const wrong = "wrong-key-0123456789abcdef" // as long as the real one
	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		status int
		want   string
	}{
		{"no key", "/api/info", map[string]string{"Authorization": ""}, 401, "API key missing"},
		{"empty apikey", "/api/info", map[string]string{"Authorization": "apikey "}, 401, "API key missing"},
		{"scheme only", "/api/info", map[string]string{"Authorization": "apikey"}, 401, "API key missing"},
		{"bearer", "/api/info", map[string]string{"Authorization": "Bearer " + testKey}, 401, "scheme not accepted"},
		{"the key without a scheme", "/api/info", map[string]string{"Authorization": testKey}, 401, "scheme not accepted"},
		{"a wrong key without a scheme", "/api/info", map[string]string{"Authorization": wrong}, 401, "scheme not accepted"},
		{"basic", "/api/info", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "not accepted"},
		{"key in the query", "/api/info?api_key=" + testKey, map[string]string{"Authorization": ""}, 401, "in the URL"},
		{"key in the query as apikey", "/api/info?apikey=" + testKey, map[string]string{"Authorization": ""}, 401, "in the URL"},
		{"wrong key", "/api/info", map[string]string{"Authorization": "apikey " + wrong}, 403, "API key not valid"},
		{"wrong key in X-API-Key", "/api/info", map[string]string{"Authorization": "", "X-API-Key": wrong}, 403, "not valid"},
		{"a prefix of the key", "/api/info", map[string]string{"Authorization": "apikey " + testKey[:len(testKey)-1]}, 403, "not valid"},
		{"the key and more", "/api/info", map[string]string{"Authorization": "apikey " + testKey + "x"}, 403, "not valid"},
		{"a very long key", "/api/info", map[string]string{"Authorization": "apikey " + strings.Repeat("k", 4000)}, 403, "not valid"},
		{"two keys", "/api/info", map[string]string{"X-API-Key": testKey}, 400, "more than one key"},
		{"valid key, query string", "/api/info?x=1", nil, 400, "query string"},
		{"valid key, but in the query too", "/api/info?api_key=" + testKey, nil, 400, "query string"},
		{"unknown path without a key", "/api/nope", map[string]string{"Authorization": ""}, 404, "no endpoint"},
		{"no key, wrong method", "/api/info", map[string]string{"Authorization": ""}, 401, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(http.MethodPost, tc.path, "{}", tc.header)
			pe := a.errorOf(t)
			if a.status != tc.status || !strings.Contains(pe.Message, tc.want) {
				t.Fatalf("%d %s, want %d saying %q", a.status, a.body, tc.status, tc.want)
			}
			for _, k := range []string{testKey, wrong} {
				for i := 0; i+6 <= len(k); i++ {
					if strings.Contains(string(a.body), k[i:i+6]) {
						t.Fatalf("the answer repeats part of a key (%q): %s", k[i:i+6], a.body)
					}
				}
			}
			if got := a.header.Get("WWW-Authenticate"); (tc.status == 401) != (got != "") {
				t.Fatalf("WWW-Authenticate %q on a %d", got, tc.status)
			}
			if tc.status == 401 && pe.Code != protocol.CodeUnauthorized || tc.status == 403 && pe.Code != protocol.CodeForbidden {
				t.Fatalf("code %d on a %d", pe.Code, tc.status)
			}
		})
	}
	for _, h := range []map[string]string{
		{"Authorization": "apikey " + testKey},
		{"Authorization": "APIKEY second-key"},
		{"Authorization": "", "X-API-Key": testKey},
		{"Authorization": "", "X-API-Key": "second-key"},
	} {
		if a := e.do(http.MethodPost, "/api/info", "{}", h); a.status != 200 {
			t.Errorf("%v: %d %s", h, a.status, a.body)
		}
	}
}

// TestNoBodyReadBeforeAuth: a request without a key is refused on its headers: a huge body is
// not read (401, not 413), so an anonymous peer costs a header parse and a hash.
func TestNoBodyReadBeforeAuth(t *testing.T) {
	e := newEnv(t, nil)
	var read atomic.Int64 // the transport reads the body on a goroutine of its own
	body := readerFunc(func(p []byte) (int, error) {
		if read.Load() > 64<<20 {
			return 0, io.EOF
		}
		read.Add(int64(len(p)))
		for i := range p {
			p[i] = ' '
		}
		return len(p), nil
	})
	req, _ := http.NewRequest(http.MethodPost, e.api+"/api/publish", body) // chunked: no length
	a := e.send(req)
	if a.status != 401 || read.Load() > 8<<20 {
		t.Fatalf("%d after %d bytes read: %s", a.status, read.Load(), a.body)
	}
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestHostileBodies: every malformed request gets a precise answer naming what is wrong.
func TestHostileBodies(t *testing.T) {
	e := newEnv(t, &api.Options{Keys: []string{testKey}, MaxDataSize: 1000})
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		want             string
	}{
		{"unknown field", "/api/publish", `{"channel":"a","data":1,"chanel":"b"}`, nil, 400, `unknown field "chanel"`},
		{"wrong type", "/api/publish", `{"channel":5,"data":1}`, nil, 400, `field "channel": JSON number where a string was expected`},
		{"wrong type deeper", "/api/history", `{"channel":"a","since":{"epoch":"e","offset":"1"}}`, nil, 400, `field "since.offset"`},
		{"negative offset", "/api/history", `{"channel":"a","since":{"epoch":"e","offset":-1}}`, nil, 400, `since.offset`},
		{"fraction", "/api/presence", `{"channel":"a","limit":1.5}`, nil, 400, `field "limit"`},
		{"not an object", "/api/publish", `[1,2]`, nil, 400, "not an object"},
		{"not JSON", "/api/publish", `{"channel":`, nil, 400, "not JSON"},
		{"garbage", "/api/publish", "\x00\xff", nil, 400, "not JSON"},
		{"two values", "/api/publish", `{"channel":"a","data":1}{}`, nil, 400, "more than one JSON value"},
		{"deep data", "/api/publish", `{"channel":"a","data":` + deep[:1000] + `}`, nil, 400, "not JSON"},
		{"deeper than the decoder goes", "/api/publish", `{"channel":"a","data":` + deep + `}`, nil, 400, "exceeded max depth"},
		{"huge body", "/api/publish", `{"channel":"a","data":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "limit"},
		{"data over MaxDataSize", "/api/publish", `{"channel":"a","data":"` + strings.Repeat("x", 1000) + `"}`, nil, 413, "data of 1002 bytes, limit 1000"},
		{"data not UTF-8", "/api/publish", "{\"channel\":\"a\",\"data\":\"\xff\"}", nil, 400, "UTF-8"},
		{"no data", "/api/publish", `{"channel":"a"}`, nil, 400, "data required"},
		{"bad channel", "/api/publish", `{"channel":"a b","data":1}`, nil, 400, "channel"},
		{"no channel", "/api/publish", `{"data":1}`, nil, 400, "channel required"},
		{"long channel", "/api/publish", `{"channel":"` + strings.Repeat("c", 300) + `","data":1}`, nil, 400, "longer than"},
		{"no user", "/api/subscribe", `{"channel":"a"}`, nil, 400, "user required"},
		{"long user", "/api/disconnect", `{"user":"` + strings.Repeat("u", 1025) + `"}`, nil, 400, "user longer"},
		{"long reason", "/api/disconnect", `{"user":"u","reason":"` + strings.Repeat("r", 124) + `"}`, nil, 400, "reason"},
		{"negative limit", "/api/history", `{"channel":"a","limit":-1}`, nil, 400, "limit -1"},
		{"huge limit", "/api/channels", `{"limit":1000000000000}`, nil, 400, "limit"},
		{"limit beyond int64", "/api/channels", `{"limit":1e30}`, nil, 400, `field "limit"`},
		{"long key", "/api/publish", `{"channel":"a","data":1,"idempotency_key":"` + strings.Repeat("k", api.MaxKeyLen+1) + `"}`, nil, 400, "longer than 128"},
		{"keys differ", "/api/publish", `{"channel":"a","data":1,"idempotency_key":"x"}`, map[string]string{"Idempotency-Key": "y"}, 400, "differ"},
		{"control byte in key", "/api/publish", `{"channel":"a","data":1,"idempotency_key":"a\u0001"}`, nil, 400, "printable"},
		{"text/plain", "/api/publish", `{"channel":"a","data":1}`, map[string]string{"Content-Type": "text/plain"}, 415, `"text/plain" not accepted`},
		{"form", "/api/publish", `channel=a`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"no content type", "/api/publish", `{"channel":"a","data":1}`, map[string]string{"Content-Type": ""}, 415, "none"},
		{"latin-1", "/api/publish", `{"channel":"a","data":1}`, map[string]string{"Content-Type": "application/json; charset=latin1"}, 415, "not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(http.MethodPost, tc.path, tc.body, tc.header)
			if pe := a.errorOf(t); a.status != tc.status || !strings.Contains(pe.Message, tc.want) {
				t.Fatalf("%d %s, want %d saying %q", a.status, a.body, tc.status, tc.want)
			}
		})
	}
	// What is accepted beside: a charset of UTF-8, an empty body where nothing is required.
	if a := e.do(http.MethodPost, "/api/publish", `{"channel":"a","data":1}`, map[string]string{"Content-Type": "application/json; charset=UTF-8"}); a.status != 200 {
		t.Fatalf("charset=UTF-8: %d %s", a.status, a.body)
	}
	if a := e.do(http.MethodPost, "/api/channels", "", map[string]string{"Content-Type": ""}); a.status != 200 || string(a.body) != "{\"channels\":[]}\n" {
		t.Fatalf("empty body: %d %s", a.status, a.body)
	}
}

// TestMethodsAndPaths: another method than POST is 405 with Allow; an unknown path 404.
func TestMethodsAndPaths(t *testing.T) {
	e := newEnv(t, nil)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		a := e.do(m, "/api/publish", "", nil)
		if a.status != 405 || a.header.Get("Allow") != "POST" || !strings.Contains(a.errorOf(t).Message, "POST") {
			t.Errorf("%s: %d %v %s", m, a.status, a.header, a.body)
		}
	}
	for _, p := range []string{"/api", "/api/", "/api/publish/", "/api/PUBLISH", "/publish", "/api/../api/info"} {
		req, _ := http.NewRequest(http.MethodPost, e.api+p, strings.NewReader("{}"))
		req.Header.Set("Authorization", "apikey "+testKey)
		req.URL.Path = p
		if a := e.send(req); a.status != 404 {
			t.Errorf("%s: %d %s", p, a.status, a.body)
		}
	}
}
