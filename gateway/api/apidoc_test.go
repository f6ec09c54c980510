package api_test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/gateway/api"
)

var (
	curlCmd  = regexp.MustCompile(`curl -sS -X POST "\$API(/\w+)"((?:\s+-H (?:'[^']*'|"[^"]*"))*)(?:\s+-d '([^']*)')?`)
	curlHdr  = regexp.MustCompile(`-H (?:'([^']*)'|"([^"]*)")`)
	docsPath = "../../docs/API.md"
)

// TestAPIDocCurl: every curl command of docs/API.md, run as written against the real API (with
// the test's key for $KEY), gets 200 (or the 404 of history_remove on a broker that cannot),
// and every endpoint has one.
func TestAPIDocCurl(t *testing.T) {
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	e := newEnv(t, nil)
	seen := map[string]bool{}
	for _, m := range curlCmd.FindAllStringSubmatch(text, -1) {
		path, headers, body := m[1], m[2], m[3]
		seen[path] = true
		req, _ := http.NewRequest(http.MethodPost, e.api+api.DefaultBasePath+path, strings.NewReader(body))
		for _, h := range curlHdr.FindAllStringSubmatch(headers, -1) {
			k, v, _ := strings.Cut(h[1]+h[2], ": ")
			req.Header.Set(k, strings.ReplaceAll(v, "$KEY", testKey))
		}
		a := e.send(req)
		if a.status != e.wantStatus(path) {
			t.Errorf("%s: %d %s", m[0], a.status, a.body)
		}
	}
	for _, r := range api.Routes() {
		if !seen[r] {
			t.Errorf("docs/API.md has no curl example of %s", r)
		}
	}
}
