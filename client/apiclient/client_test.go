package apiclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/client/apiclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNewRefuses: base URLs that cannot be the API's, and keys a header cannot carry.
func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct{ url, key string }{
		{"localhost:8000/api", "k"},
		{"ftp://host/api", "k"},
		{"http:///api", "k"},
		{"http://host/api?apikey=k", "k"},
		{"http://user:pass@host/api", "k"},
		{"http://host/api#x", "k"},
		{"http://host/api", "a key"},
		{"http://host/api", "ключ"},
	} {
		if _, err := apiclient.New(tc.url, tc.key, nil); err == nil {
			t.Errorf("New(%q, %q): no error", tc.url, tc.key)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("New(%q): the error repeats the password: %v", tc.url, err)
		}
	}
}

// TestAnswers: what the client makes of answers a server, or something in front of it, sends.
func TestAnswers(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		switch r.URL.Path {
		case "/api/info":
			w.Write([]byte(`{"name":"n1","version":"v1","uptime_seconds":5,"connections":2}`))
		case "/api/publish":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(503)
			w.Write([]byte(`{"error":{"code":201,"message":"broker unavailable"}}`))
		case "/api/presence":
			w.WriteHeader(502)
			w.Write([]byte("<html>bad gateway</html>"))
		case "/api/history":
			w.Write([]byte(`{"publications":[` + strings.Repeat(`{"offset":1,"data":1},`, 100) + `{}]}`))
		default:
			w.Write([]byte(`not json`))
		}
	}))
	defer srv.Close()
	c, err := apiclient.New(srv.URL+"/api/", "k3y", &apiclient.Options{MaxResponseBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info, err := c.Info(ctx)
	if err != nil || info.Name != "n1" || info.Connections != 2 {
		t.Fatalf("info %+v %v", info, err)
	}
	if got.Method != "POST" || got.URL.Path != "/api/info" || got.Header.Get("Authorization") != "apikey k3y" || got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request %s %s %v", got.Method, got.URL, got.Header)
	}
	_, err = c.Publish(ctx, "a", []byte(`1`), "")
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != 201 || ae.RetryAfter != 3*time.Second || !ae.Retryable() {
		t.Fatalf("503: %#v", err)
	}
	_, err = c.Presence(ctx, "a", "", 0)
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != 0 || ae.Message != "<html>bad gateway</html>" {
		t.Fatalf("502 from a proxy: %#v", err)
	}
	if _, err = c.History(ctx, "a", nil, 0); err == nil || !strings.Contains(err.Error(), "over 1000 bytes") {
		t.Fatalf("oversized answer: %v", err)
	}
	if _, err = c.Channels(ctx, "", "", 0); err == nil || errors.As(err, &ae) {
		t.Fatalf("200 that is not JSON: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err = c.Info(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
