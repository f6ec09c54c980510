package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/echoserver"
)

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		xs   []uint64
		want float64
	}{
		{[]uint64{5, 5, 5, 5}, 1},
		{[]uint64{10, 0, 0, 0}, 0.25},
		{[]uint64{0, 0}, 1},
		{[]uint64{1, 3}, 16.0 / 20},
	} {
		if got := jain(tc.xs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("jain(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 500e3}, {0.99, 990e3}} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want)/tc.want > 0.04 {
			t.Errorf("quantile(%v) = %v ns, want %v ± 4%%", tc.q, got, tc.want)
		}
	}
	for v := uint64(0); v < 1<<20; v = v*2 + 1 { // indexes grow with values and stay in range
		if i, j := histIndex(v), histIndex(v+1); j < i || j >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, histIndex(%d) = %d", v, i, v+1, j)
		}
	}
	if i := histIndex(math.MaxUint64); i != histBuckets-1 {
		t.Fatalf("histIndex(max) = %d, want %d", i, histBuckets-1)
	}
}

func TestStamp(t *testing.T) {
	a, b := newPayload(32), newPayload(32)
	stamp(a, 1, 2)
	stamp(b, 1, 3)
	if bytes.Equal(a, b) || !strings.HasPrefix(string(a), "000001:0000000002:") {
		t.Fatalf("stamps: %q, %q", a, b)
	}
	short := newPayload(4)
	stamp(short, 1, 2) // fits what it can
	if string(short) != "0000" {
		t.Fatalf("short stamp: %q", short)
	}
}

func startEcho(t *testing.T) string {
	t.Helper()
	srv := echoserver.NewGWS()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func TestRunEcho(t *testing.T) {
	url := startEcho(t)
	for _, window := range []string{"1", "4"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"-url", url, "-conns", "3", "-size", "100",
			"-duration", "300ms", "-window", window, "-json", "-text"}, strings.NewReader(""), &out)
		if err != nil {
			t.Fatal(err)
		}
		var r result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Messages == 0 || r.Errors != 0 || r.PerConnMin == 0 || r.Jain <= 0 {
			t.Fatalf("window %s: %+v", window, r)
		}
	}
}

func TestRunIdle(t *testing.T) {
	url := startEcho(t)
	pr, pw := io.Pipe()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-url", url, "-idle", "20", "-duration", "20s"}, pr, &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "open 20\n") {
		if time.Now().After(deadline) {
			t.Fatal("no \"open 20\" line")
		}
		time.Sleep(5 * time.Millisecond)
	}
	pw.Close() // stdin closes: echoload lets go
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRejectsNonLoopback(t *testing.T) {
	for _, u := range []string{"ws://10.0.0.1:80/ws", "ws://example.com/ws", "wss://127.0.0.1/ws"} {
		if err := run(context.Background(), []string{"-url", u}, nil, io.Discard); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe to read while run writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
