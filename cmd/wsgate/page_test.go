package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPageServesClient checks the stable paths of the browser client and that the page loads it as
// a module under a CSP that allows scripts of its own origin only.
func TestPageServesClient(t *testing.T) {
	h := pageHandler()
	for _, tc := range []struct {
		path, contentType, body string
		header                  map[string]string
	}{
		{"/", "text/html", `<script type="module" src="app.js">`, nil},
		{"/app.js", "javascript", "from './js/wsgate.js'", nil},
		{clientPath, "javascript", "export class WsgateClient", map[string]string{
			"X-TypeScript-Types":          clientTypesPath,
			"Access-Control-Allow-Origin": "*",
		}},
		{clientTypesPath, "application/typescript", "export declare class WsgateClient", map[string]string{
			"Access-Control-Allow-Origin": "*",
		}},
		{"/chat.html", "text/html", `<script type="module" src="chat.js">`, nil},
		{"/chat.js", "javascript", "from './js/wsgate-pubsub.js'", nil},
		{"/js/wsgate-pubsub.js", "javascript", "export class PubSubClient extends WsgateClient", map[string]string{
			"X-TypeScript-Types":          "/js/wsgate-pubsub.d.ts",
			"Access-Control-Allow-Origin": "*",
		}},
		{"/js/wsgate-pubsub.d.ts", "application/typescript", "export declare class PubSubClient", nil},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		res := rec.Result()
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("GET %s = %d %q; want 200, %q, a body with %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.contentType, tc.body)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
		for k, v := range tc.header {
			if got := res.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, got, v)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	for _, id := range []string{"open", "close", "send", "input", "log", "state", "countdown", "rtt", "outbox"} {
		if !strings.Contains(rec.Body.String(), `id="`+id+`"`) {
			t.Errorf("the page has no element with id %q", id)
		}
	}
}
