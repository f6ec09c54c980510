package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/internal/testport"
)

// backend is the application's backend as the tests see it: it records every event POSTed,
// and answers with status (200 unless set).
type backend struct {
	mu     sync.Mutex
	events []Event
	posts  int
	status atomic.Int32
	secret string
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	secret := b.secret
	b.mu.Unlock()
	if secret != "" && r.Header.Get("X-Secret") != secret {
		http.Error(w, "no secret", http.StatusUnauthorized)
		return
	}
	if st := int(b.status.Load()); st != 0 && st != 200 {
		http.Error(w, "down", st)
		return
	}
	var e Event
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil {
		http.Error(w, "bad event: "+string(body), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.events = append(b.events, e)
	b.posts++
	b.mu.Unlock()
}

func (b *backend) got() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.events...)
}

// distinct returns the events by ID, the first arrival of each, in arrival order.
func distinct(evs []Event) []Event {
	seen := map[string]bool{}
	var out []Event
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newSender(t *testing.T, o Options) *Sender {
	t.Helper()
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// checkLifecycles fails unless evs hold, for each of n clients c0..c(n-1), its connect and then
// its disconnect (first arrivals).
func checkLifecycles(t *testing.T, evs []Event, n int) {
	t.Helper()
	first := map[string]int{}
	for i, e := range evs {
		if _, ok := first[e.ID]; !ok {
			first[e.ID] = i
		}
	}
	for i := range n {
		c := fmt.Sprintf("c%d", i)
		ci, okc := first[eventID("n1", c, TypeConnect)]
		di, okd := first[eventID("n1", c, TypeDisconnect)]
		if !okc || !okd || ci > di {
			t.Fatalf("client %s: connect at %d (%v), disconnect at %d (%v)", c, ci, okc, di, okd)
		}
	}
}

// TestBackendDownThenUp: the backend refuses connections, then answers 503, then comes up;
// every event arrives, each connection's connect before its disconnect, with the fields
// Connected and Disconnected were given.
func TestBackendDownThenUp(t *testing.T) {
	addr := testport.Addr(t) // refused until the backend starts on it
	be := &backend{secret: "s3"}
	logs := &logBuffer{}
	s := newSender(t, Options{
		URL: "http://" + addr + "/events", Node: "n1", Headers: http.Header{"X-Secret": {"s3"}},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	const n = 20
	connected := time.Now().Add(-time.Second)
	for i := range n {
		ci := ConnectInfo{Client: fmt.Sprintf("c%d", i), User: "alice", Transport: "wsgate.v1", Remote: "10.0.0.1:5", Time: connected}
		s.Connected(ci)
		if i%2 == 1 { // some end at once, the others later
			s.Disconnected(DisconnectInfo{ConnectInfo: ci, Code: 1000, Reason: "bye"})
		}
	}
	eventually(t, 5*time.Second, "failed attempts", func() bool { return s.Stats().Failed >= 3 })
	srv := httptest.NewUnstartedServer(be)
	var err error
	if srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	be.status.Store(503)
	srv.Start()
	defer srv.Close()
	for i := 0; i < n; i += 2 {
		s.Disconnected(DisconnectInfo{ConnectInfo: ConnectInfo{Client: fmt.Sprintf("c%d", i), User: "alice", Time: connected}, Code: 4001, Reason: "unauthorized"})
	}
	failed := s.Stats().Failed
	eventually(t, 5*time.Second, "503s", func() bool { return s.Stats().Failed >= failed+3 })
	if len(be.got()) != 0 {
		t.Fatal("events recorded while the backend answered 503")
	}
	be.status.Store(200)
	eventually(t, 10*time.Second, "every event", func() bool { return len(distinct(be.got())) == 2*n })
	evs := be.got()
	checkLifecycles(t, evs, n)
	e := evs[0]
	if e.Type != TypeConnect || e.Client != "c0" || e.User != "alice" || e.Transport != "wsgate.v1" ||
		e.Remote != "10.0.0.1:5" || !e.Time.Equal(connected) || e.Node != "n1" || e.NodeLost {
		t.Fatalf("first event: %+v", e)
	}
	for _, e := range evs {
		if e.Type == TypeDisconnect && e.Client == "c1" &&
			(e.Code != 1000 || e.Reason != "bye" || e.DurationMS == nil || *e.DurationMS < 1000 || e.NodeLost) {
			t.Fatalf("disconnect: %+v", e)
		}
	}
	// The backend records an event before its answer reaches the sender, which counts the
	// delivery then: wait for the count, do not read it at once.
	eventually(t, 5*time.Second, "every delivery counted", func() bool {
		st := s.Stats()
		return st.Delivered >= 2*n && st.Pending == 0
	})
	if st := s.Stats(); st.Dropped != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if l := logs.String(); strings.Count(l, "does not acknowledge") != 1 || !strings.Contains(l, "acknowledges events again") {
		t.Fatalf("log, one warning per outage and its end:\n%s", l)
	}
}

// TestWrongSecretIsRetried: a 401 is no acknowledgement: the event is tried again until the
// backend takes it.
func TestWrongSecretIsRetried(t *testing.T) {
	be := &backend{secret: "right"}
	srv := httptest.NewServer(be)
	defer srv.Close()
	s := newSender(t, Options{URL: srv.URL, Node: "n1", Headers: http.Header{"X-Secret": {"wrong"}}, Logger: slog.New(slog.DiscardHandler)})
	s.Connected(ConnectInfo{Client: "c0"})
	eventually(t, 5*time.Second, "refusals", func() bool { return s.Stats().Failed >= 3 })
	be.mu.Lock()
	be.secret = "wrong"
	be.mu.Unlock()
	eventually(t, 5*time.Second, "the event", func() bool { return len(be.got()) == 1 })
}

// TestFullOutboxDrops: with the backend down, a small outbox fills, then the queue before it:
// the calls beyond are dropped, counted and logged, never silently; what was kept arrives once
// the backend is up.
func TestFullOutboxDrops(t *testing.T) {
	be := &backend{}
	be.status.Store(503)
	srv := httptest.NewServer(be)
	defer srv.Close()
	ob := memory.NewOutbox(&memory.OutboxOptions{MaxEvents: 4, MaxHeld: 2, Retry: time.Millisecond})
	defer ob.Close()
	logs := &logBuffer{}
	s := newSender(t, Options{URL: srv.URL, Node: "n1", Outbox: ob, QueueLen: 3, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for i := range 10 {
		s.Connected(ConnectInfo{Client: fmt.Sprintf("c%d", i)})
		if i < 4 { // these reach the outbox, and fill it
			eventually(t, 5*time.Second, "the outbox taking an event", func() bool { return s.Stats().Pending == 0 })
		}
	}
	eventually(t, 5*time.Second, "the outbox full", func() bool { return ob.Stats().Queued == 4 && s.Stats().Pending == 3 })
	st := s.Stats()
	// 4 in the outbox (2 of them with their disconnect held, 2 unheld), 3 waiting, 3 dropped.
	if st.Dropped != 3 || st.Unheld != 2 || ob.Stats().Held != 2 {
		t.Fatalf("stats: %+v, outbox %+v", st, ob.Stats())
	}
	if l := logs.String(); strings.Count(l, "events dropped") != 2 || !strings.Contains(l, "could not be held") { // drops 1 and 2
		t.Fatalf("log:\n%s", l)
	}
	be.status.Store(200)
	eventually(t, 5*time.Second, "the 7 kept", func() bool { return len(distinct(be.got())) == 7 })
	for i, e := range distinct(be.got()) {
		if e.Client != fmt.Sprintf("c%d", i) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
}

// TestCloseDelivers: Close waits for the backend to take what its own outbox holds.
func TestCloseDelivers(t *testing.T) {
	be := &backend{}
	srv := httptest.NewServer(be)
	defer srv.Close()
	s, err := New(context.Background(), Options{URL: srv.URL, Node: "n1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		ci := ConnectInfo{Client: fmt.Sprintf("c%d", i)}
		s.Connected(ci)
		s.Disconnected(DisconnectInfo{ConnectInfo: ci})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(be.got()); got != 100 {
		t.Fatalf("%d events delivered before Close returned", got)
	}
	checkLifecycles(t, be.got(), 50)
	s.Connected(ConnectInfo{Client: "late"})
	if s.Stats().Dropped != 1 {
		t.Fatal("an event after Close not counted as dropped")
	}
}

// TestBadInput: a URL that is not http(s) is refused; a client name beyond MaxClientLen is
// dropped and counted.
func TestBadInput(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "/events", "http://"} {
		if _, err := New(context.Background(), Options{URL: u}); err == nil || !strings.HasPrefix(err.Error(), "events: ") {
			t.Fatalf("URL %q: %v", u, err)
		}
	}
	s := newSender(t, Options{URL: "http://127.0.0.1:1/", Logger: slog.New(slog.DiscardHandler)})
	s.Connected(ConnectInfo{Client: strings.Repeat("x", MaxClientLen+1)})
	if st := s.Stats(); st.Dropped != 1 || st.Pending != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestBackoff: the wait doubles from MinBackoff, is capped at MaxBackoff, and keeps at least
// half of it.
func TestBackoff(t *testing.T) {
	s := &Sender{opts: Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
	for n, want := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 100, 60: 100} {
		want *= time.Millisecond
		for range 20 {
			if d := s.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// TestHostileBackend: a backend that never answers costs one POST at a time, cut at Timeout
// and tried again; one that answers 2xx with an endless body is read up to 64 KiB, and its
// event counts as delivered.
func TestHostileBackend(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	s := newSender(t, Options{URL: hang.URL, Timeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	s.Connected(ConnectInfo{Client: "c0"})
	s.Connected(ConnectInfo{Client: "c1"})
	eventually(t, 5*time.Second, "attempts cut at Timeout", func() bool { return s.Stats().Failed >= 3 })
	if st := s.Stats(); st.Delivered != 0 || int(calls.Load()) > int(st.Failed)+1 {
		t.Fatalf("stats %+v after %d calls: more than one POST at a time", st, calls.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("close with events undelivered: %v after %v", err, time.Since(start))
	}

	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 4096)
		for range 1 << 12 { // 16 MiB, unless the client hangs up first
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	s2 := newSender(t, Options{URL: endless.URL, Logger: slog.New(slog.DiscardHandler)})
	s2.Connected(ConnectInfo{Client: "c0"})
	eventually(t, 5*time.Second, "the events delivered", func() bool { return s2.Stats().Delivered == 1 })
}
