package proxy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/testport"
	"github.com/wsgate/wsgate/protocol"
)

// blocking answers nothing until the caller hangs up (or 10 s, so that a broken test ends).
func blocking(w http.ResponseWriter, r *http.Request, _ int) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// status answers every call with code.
func status(code int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(code) }
}

// hangUp closes the connection after reading the request: the backend may have acted on it.
func hangUp(w http.ResponseWriter, _ *http.Request, _ int) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// closedURL is a loopback address nothing listens on: a dial is refused.
func closedURL(t *testing.T) string {
	return "http://" + testport.Addr(t)
}

func fast(cfg proxy.Config) proxy.Config {
	cfg.Backoff, cfg.MaxBackoff = time.Millisecond, 2*time.Millisecond
	return cfg
}

func TestTimeout(t *testing.T) {
	b := newBackend(t, blocking)
	cfg := all(b.URL)
	cfg.Connect.Timeout, cfg.Connect.Retries = 100*time.Millisecond, -1
	p := newProxy(t, cfg)
	start := time.Now()
	_, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client("")})
	pe := wantCode(t, err, protocol.CodeUnavailable)
	if el := time.Since(start); el > 2*time.Second || !errors.Is(err, context.DeadlineExceeded) || pe.Attempts != 1 || pe.Disconnect != nil {
		t.Fatalf("after %v: %v (attempts %d)", el, err, pe.Attempts)
	}
}

// TestTrickledAnswer: the attempt's timeout bounds reading the answer too, so a backend that
// sends its body a byte at a time cannot hold a call longer.
func TestTrickledAnswer(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Content-Length", "1000")
		for i := 0; i < 1000; i++ {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	cfg := all(b.URL)
	cfg.Subscribe.Timeout, cfg.Subscribe.Retries = 150*time.Millisecond, -1
	p := newProxy(t, cfg)
	start := time.Now()
	err := p.Subscribe(context.Background(), proxy.SubscribeRequest{Client: client("u"), Channel: "a"})
	wantCode(t, err, protocol.CodeUnavailable)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("a trickled answer held the call %v", el)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	for name, first := range map[string]func(http.ResponseWriter, *http.Request, int){
		"503": status(503), "502": status(502), "504": status(504), "hang up": hangUp, "timeout": blocking,
	} {
		t.Run(name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n <= 2 {
					first(w, r, n)
					return
				}
				_, _ = io.WriteString(w, `{"result":{"user":"alice"}}`)
			})
			cfg := fast(all(b.URL))
			cfg.Connect.Timeout = 200 * time.Millisecond
			p := newProxy(t, cfg)
			id, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client("")})
			if err != nil || id.User != "alice" || len(b.calls()) != 3 {
				t.Fatalf("%+v, %v after %d calls", id, err, len(b.calls()))
			}
		})
	}
}

func TestRetriesExhausted(t *testing.T) {
	b := newBackend(t, status(502))
	p := newProxy(t, fast(all(b.URL)))
	_, err := p.RPC(context.Background(), proxy.RPCRequest{Client: client("u"), Method: "m"})
	pe := wantCode(t, err, protocol.CodeUnavailable)
	if pe.Attempts != 3 || pe.Status != 502 || len(b.calls()) != 3 {
		t.Fatalf("%v: attempts %d, calls %d", err, pe.Attempts, len(b.calls()))
	}
	// A 500 is the backend's own failure, not a gateway's: not retried.
	b = newBackend(t, status(500))
	p = newProxy(t, fast(all(b.URL)))
	_, err = p.RPC(context.Background(), proxy.RPCRequest{Client: client("u"), Method: "m"})
	if wantCode(t, err, protocol.CodeUnavailable); len(b.calls()) != 1 {
		t.Fatalf("500 retried: %d calls", len(b.calls()))
	}
}

// TestPublishRetriedOnlyUnsent: a publish is sent again only when the backend cannot have seen
// it; a refused dial is retried, a 503 or a hang-up after the request is not.
func TestPublishRetriedOnlyUnsent(t *testing.T) {
	r := proxy.PublishRequest{Client: client("u"), Channel: "a", Data: []byte(`1`)}
	for name, answer := range map[string]func(http.ResponseWriter, *http.Request, int){"503": status(503), "hang up": hangUp} {
		b := newBackend(t, answer)
		p := newProxy(t, fast(all(b.URL)))
		_, err := p.Publish(context.Background(), r)
		if pe := wantCode(t, err, protocol.CodeUnavailable); pe.Attempts != 1 || len(b.calls()) != 1 {
			t.Errorf("%s: publish sent %d times (attempts %d)", name, len(b.calls()), pe.Attempts)
		}
	}
	p := newProxy(t, fast(proxy.Config{Publish: proxy.Endpoint{URL: closedURL(t)}}))
	_, err := p.Publish(context.Background(), r)
	if pe := wantCode(t, err, protocol.CodeUnavailable); pe.Attempts != 3 {
		t.Fatalf("a refused dial: attempts %d: %v", pe.Attempts, err)
	}
}

// TestNoWaitBeyondContext: a retry that the caller's deadline would cut is not waited for: the
// call fails at once, not when the deadline comes.
func TestNoWaitBeyondContext(t *testing.T) {
	b := newBackend(t, status(503))
	cfg := all(b.URL)
	cfg.Backoff, cfg.MaxBackoff = 20*time.Second, 20*time.Second // a wait of 10 s or more
	p := newProxy(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.Connect(ctx, proxy.ConnectRequest{Client: client("")})
	if pe := wantCode(t, err, protocol.CodeUnavailable); pe.Attempts != 1 || time.Since(start) > 1500*time.Millisecond ||
		!strings.Contains(err.Error(), "no time left for a retry") {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

func TestContextCancelled(t *testing.T) {
	b := newBackend(t, blocking)
	p := newProxy(t, all(b.URL))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.Connect(ctx, proxy.ConnectRequest{Client: client("")})
	if pe := wantCode(t, err, protocol.CodeUnavailable); !errors.Is(err, context.Canceled) || pe.Attempts != 1 || time.Since(start) > time.Second ||
		!strings.Contains(err.Error(), "context ended") {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	// Cancelled before the call: no request at all.
	_, err = p.Connect(ctx, proxy.ConnectRequest{Client: client("")})
	if wantCode(t, err, protocol.CodeUnavailable); len(b.calls()) != 1 {
		t.Fatalf("%d calls", len(b.calls()))
	}
}

func TestRefusals(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	type want struct {
		code  protocol.Code
		close int // 0: no disconnect
		msg   string
	}
	cases := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request, int)
		want   map[string]want // per call
	}{
		{"401", status(401), map[string]want{"connect": {109, 4001, "unauthorized"}, "refresh": {109, 0, "unauthorized"},
			"subscribe": {104, 0, "forbidden"}, "publish": {104, 0, "forbidden"}, "rpc": {104, 0, "forbidden"}}},
		{"403", status(403), map[string]want{"connect": {109, 4001, "unauthorized"}, "subscribe": {104, 0, "forbidden"}}},
		{"code 110", answering(`{"error":{"code":110,"message":"token expired"}}`),
			map[string]want{"connect": {110, 0, "token expired"}, "refresh": {110, 0, "token expired"}}},
		{"code 109", answering(`{"error":{"code":109,"message":"who?"}}`),
			map[string]want{"connect": {109, 4001, "who?"}, "refresh": {109, 0, "who?"}, "subscribe": {109, 0, "who?"}}},
		{"code 203", answering(`{"error":{"code":203}}`), map[string]want{"rpc": {203, 0, "refused by the backend"}}},
		{"app code", answering(`{"error":{"code":1000,"message":"custom"}}`),
			map[string]want{"connect": {109, 4001, "custom"}, "refresh": {109, 0, "custom"}, "subscribe": {104, 0, "custom"}, "rpc": {104, 0, "custom"}}},
		{"code 150", answering(`{"error":{"code":150,"message":"custom"}}`), map[string]want{"publish": {104, 0, "custom"}}},
		{"long message", answering(`{"error":{"code":104,"message":"` + long + `"}}`), map[string]want{"publish": {104, 0, long[:256]}}},
		{"disconnect", answering(`{"disconnect":{"code":4003,"reason":"banned"},"result":{}}`),
			map[string]want{"connect": {109, 4003, "banned"}, "subscribe": {104, 4003, "banned"}, "rpc": {104, 4003, "banned"}}},
		{"disconnect reconnect", answering(`{"disconnect":{"code":4500}}`), map[string]want{"refresh": {104, 4500, "disconnected"}}},
		{"long reason", answering(`{"disconnect":{"code":4003,"reason":"` + long + `"}}`), map[string]want{"publish": {104, 4003, long[:122]}}},
	}
	for _, tc := range cases {
		b := newBackend(t, tc.answer)
		p := newProxy(t, fast(all(b.URL)))
		for callName, w := range tc.want {
			err := do(p, callName)
			pe := wantCode(t, err, w.code)
			if pe.Reply.Message != w.msg {
				t.Errorf("%s, %s: message %q, want %q", tc.name, callName, pe.Reply.Message, w.msg)
			}
			var d *hub.Disconnect
			switch {
			case w.close == 0 && errors.As(err, &d):
				t.Errorf("%s, %s: disconnect %v", tc.name, callName, d)
			case w.close != 0 && (!errors.As(err, &d) || int(d.Code) != w.close || d.Err != pe.Reply || d.Reason != w.msg):
				t.Errorf("%s, %s: want disconnect %d, got %v", tc.name, callName, w.close, err)
			}
		}
		if len(b.calls()) != len(tc.want) {
			t.Errorf("%s: a refusal retried: %d calls for %d", tc.name, len(b.calls()), len(tc.want))
		}
	}
}

// do makes the call named name with a client that has a user.
func do(p *proxy.Proxy, name string) error {
	ctx := context.Background()
	cl := client("alice")
	var err error
	switch name {
	case "connect":
		cl.User = ""
		_, err = p.Connect(ctx, proxy.ConnectRequest{Client: cl, Token: token})
	case "refresh":
		_, err = p.Refresh(ctx, proxy.RefreshRequest{Client: cl, Token: token})
	case "subscribe":
		err = p.Subscribe(ctx, proxy.SubscribeRequest{Client: cl, Channel: "chat:a", Token: token})
	case "publish":
		_, err = p.Publish(ctx, proxy.PublishRequest{Client: cl, Channel: "chat:a", Data: []byte(`"hi"`)})
	case "rpc":
		_, err = p.RPC(ctx, proxy.RPCRequest{Client: cl, Method: "m", Data: []byte(`{}`)})
	default:
		panic(name)
	}
	return err
}

// TestBadAnswers: what the backend says is input like any other: a wrong answer is refused with
// 200 (internal), the client told nothing of it, the error saying why.
func TestBadAnswers(t *testing.T) {
	good := newBackend(t, answering(`{"result":{"user":"alice"}}`))
	cases := []struct{ name, call, body, why string }{
		{"not JSON", "connect", `hello`, "invalid character"},
		{"empty", "connect", ``, "unexpected end"},
		{"empty object", "connect", `{}`, "no result"},
		{"null result", "subscribe", `{"result":null}`, "no result"},
		{"array result", "subscribe", `{"result":[]}`, "cannot unmarshal array"},
		{"trailing garbage", "connect", `{"result":{}} x`, "invalid character"},
		{"user not a string", "connect", `{"result":{"user":42}}`, "cannot unmarshal"},
		{"user too long", "connect", `{"result":{"user":"` + strings.Repeat("u", hub.MaxUserLen+1) + `"}}`, "user of 1025 bytes"},
		{"info too long", "connect", `{"result":{"user":"a","info":"` + strings.Repeat("i", hub.MaxInfoLen) + `"}}`, "info of 1026 bytes"},
		{"bad channel", "connect", `{"result":{"channels":["ok","not ok"]}}`, "channels[1]"},
		{"empty channel", "refresh", `{"result":{"channels":[""]}}`, "channels[0]"},
		{"too many channels", "connect", `{"result":{"channels":["a","b","c","d"]}}`, "4 channels, at most 3"},
		{"channels not a list", "connect", `{"result":{"channels":"a"}}`, "cannot unmarshal"},
		{"expire_at negative", "connect", `{"result":{"expire_at":-1}}`, "expire_at -1"},
		{"expire_at float", "connect", `{"result":{"expire_at":1.5}}`, "cannot unmarshal"},
		{"expire_at far", "connect", `{"result":{"expire_at":1e15}}`, "cannot unmarshal"},
		{"expires_in far", "refresh", `{"result":{"expires_in":9999999999}}`, "expires_in"},
		{"both expiries", "connect", `{"result":{"expire_at":1767225600,"expires_in":5}}`, "both"},
		{"disconnect 1000", "connect", `{"disconnect":{"code":1000}}`, "disconnect code 1000"},
		{"disconnect 5000", "subscribe", `{"disconnect":{"code":5000}}`, "disconnect code 5000"},
		{"error code a string", "subscribe", `{"error":{"code":"104"}}`, "cannot unmarshal"},
		{"publish data too big", "publish", `{"result":{"data":"` + strings.Repeat("d", 20) + `"}}`, "data of 22 bytes, at most 16"},
		{"rpc data too big", "rpc", `{"result":{"data":[` + strings.Repeat("1,", 10) + `1]}}`, "data of 23 bytes, at most 16"},
		{"status 404", "connect", "404", "HTTP status 404"},
		{"status 204", "subscribe", "204", "HTTP status 204"},
		{"redirect", "connect", "302", "HTTP status 302"},
	}
	for _, tc := range cases {
		b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			switch tc.body {
			case "404", "204":
				w.WriteHeader(map[string]int{"404": 404, "204": 204}[tc.body])
			case "302":
				http.Redirect(w, r, good.URL+"/connect", http.StatusFound)
			default:
				_, _ = io.WriteString(w, tc.body)
			}
		})
		cfg := fast(all(b.URL))
		cfg.MaxChannels, cfg.MaxDataSize = 3, 16
		p := newProxy(t, cfg)
		err := do(p, tc.call)
		pe := wantCode(t, err, protocol.CodeInternal)
		if pe.Reply.Message != "bad answer from the backend" || !strings.Contains(err.Error(), tc.why) || pe.Disconnect != nil {
			t.Errorf("%s: %v (want %q)", tc.name, err, tc.why)
		}
		if len(b.calls()) != 1 {
			t.Errorf("%s: a bad answer retried (%d calls)", tc.name, len(b.calls()))
		}
	}
	if n := len(good.calls()); n != 0 {
		t.Fatalf("a redirect was followed (%d calls)", n)
	}
}

// countingConn counts the bytes read from the backend.
type countingConn struct {
	net.Conn
	n *int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	*c.n += int64(n) // one reader per connection, and one connection in these tests
	return n, err
}

// TestOversizedAnswer: a backend that streams without end costs the node MaxResponseBytes and a
// buffer, measured on the socket: the client stops reading at the bound and hangs up, so the
// backend's writes fail.
func TestOversizedAnswer(t *testing.T) {
	const bound = 64 << 10
	const endless = 64 << 20
	for _, declared := range []bool{false, true} {
		t.Run(fmt.Sprintf("Content-Length declared %v", declared), func(t *testing.T) {
			written := make(chan int, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if declared {
					w.Header().Set("Content-Length", fmt.Sprint(endless))
				}
				chunk := []byte(`{"result":{"data":"` + strings.Repeat("x", 32<<10))
				n := 0
				for n < endless {
					m, err := w.Write(chunk)
					n += m
					if err != nil {
						break
					}
					chunk = chunk[:0]
					chunk = append(chunk, strings.Repeat("x", 32<<10)...)
				}
				written <- n
			}))
			t.Cleanup(srv.Close)
			var read int64
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{c, &read}, nil
			}}
			p := newProxy(t, proxy.Config{RPC: proxy.Endpoint{URL: srv.URL, Retries: -1}, MaxResponseBytes: bound, MaxDataSize: 1 << 10,
				Client: &http.Client{Transport: tr}})
			_, err := p.RPC(context.Background(), proxy.RPCRequest{Client: client("u"), Method: "m"})
			pe := wantCode(t, err, protocol.CodeInternal)
			if !strings.Contains(pe.Error(), "answer longer than 65536 bytes") {
				t.Fatalf("%v", err)
			}
			select {
			case n := <-written:
				if n >= endless {
					t.Fatalf("the backend wrote all %d bytes: the client read on", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the backend still writes: the connection was not dropped")
			}
			tr.CloseIdleConnections()
			limit := int64(bound + 16<<10)
			if declared {
				limit = 16 << 10 // the header alone refuses it
			}
			if read > limit {
				t.Fatalf("the client read %d bytes from the backend, bound %d", read, limit)
			}
			t.Logf("read %d bytes of the backend's answer", read)
		})
	}
}

// TestErrorsHoldNoSecrets: whatever fails, neither the client's reply nor the error text holds
// the token, the cookie or the backend's URL (with its key).
func TestErrorsHoldNoSecrets(t *testing.T) {
	secrets := []string{token, "s3cr3t", "urlkey"}
	garbage := newBackend(t, answering(`{"result":{"user":{"sid":"x"}}}`))
	slow := newBackend(t, blocking)
	for name, url := range map[string]string{"refused": closedURL(t), "garbage": garbage.URL, "slow": slow.URL} {
		p := newProxy(t, fast(proxy.Config{Connect: proxy.Endpoint{URL: url + "/c?key=urlkey", Timeout: 100 * time.Millisecond}}))
		_, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: client(""), Token: token})
		pe := wantCode(t, err, protoErr(t, err).Code)
		for _, s := range append(secrets, url) {
			if strings.Contains(err.Error(), s) || strings.Contains(pe.Reply.Message, s) {
				t.Errorf("%s: %q holds %q", name, err, s)
			}
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestCompressedBomb: the bound applies to the answer as decompressed, so a small gzip body that
// inflates to megabytes is cut at MaxResponseBytes like any other.
func TestCompressedBomb(t *testing.T) {
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = io.WriteString(zw, `{"result":{"data":"`+strings.Repeat("x", 2<<20)+`"}}`)
	_ = zw.Close()
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(bomb.Bytes())
	})
	p := newProxy(t, fast(all(b.URL)))
	_, err := p.RPC(context.Background(), proxy.RPCRequest{Client: client("u"), Method: "m"})
	if pe := wantCode(t, err, protocol.CodeInternal); !strings.Contains(pe.Error(), "answer longer than") {
		t.Fatalf("%d compressed bytes: %v", bomb.Len(), err)
	}
}

// TestNoCookieJar: cookies a backend sets are not kept for later calls, even with a client that
// has a jar: they would carry one user's session into another user's call.
func TestNoCookieJar(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		http.SetCookie(w, &http.Cookie{Name: "backend", Value: "alice-only", Path: "/"})
		_, _ = io.WriteString(w, `{"result":{}}`)
	})
	jar, _ := cookiejar.New(nil)
	cfg := all(b.URL)
	cfg.Client = &http.Client{Jar: jar}
	p := newProxy(t, cfg)
	for _, user := range []string{"alice", "bob"} {
		if err := p.Subscribe(context.Background(), proxy.SubscribeRequest{Client: client(user), Channel: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.last(t).Header.Values("Cookie"); len(got) != 1 || got[0] != cookie {
		t.Fatalf("bob's call carried cookies %q", got)
	}
}

// TestBackendConnectionsBounded: a flood of calls opens at most DefaultMaxConnsPerHost
// connections to the backend; the others wait for one, and all are answered.
func TestBackendConnectionsBounded(t *testing.T) {
	const calls = proxy.DefaultMaxConnsPerHost + 44
	var mu sync.Mutex
	active, most := 0, 0
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, `{"result":{}}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			active++
			most = max(most, active)
		case http.StateClosed, http.StateHijacked:
			active--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := newProxy(t, proxy.Config{Subscribe: proxy.Endpoint{URL: srv.URL, Timeout: 10 * time.Second}})
	errs := make(chan error, calls)
	for range calls {
		go func() { // owner: this test; ends with its call, waited for below
			errs <- p.Subscribe(context.Background(), proxy.SubscribeRequest{Client: client("u"), Channel: "a"})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := active
		mu.Unlock()
		if n >= proxy.DefaultMaxConnsPerHost || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // time for a connection beyond the bound to show
	close(release)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != proxy.DefaultMaxConnsPerHost {
		t.Fatalf("%d connections to the backend at most, want %d", most, proxy.DefaultMaxConnsPerHost)
	}
}
