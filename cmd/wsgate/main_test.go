package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: run must stop everything it
// starts. It removes the binaries the tests built.
func TestMain(m *testing.M) { goleak.VerifyTestMain(cleanBuilds{m}) }

// cleanBuilds runs the tests, then removes the directories of buildBinary.
type cleanBuilds struct{ m *testing.M }

func (c cleanBuilds) Run() int {
	code := c.m.Run()
	builds.Range(func(_, v any) bool {
		if b := v.(*build); b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
		return true
	})
	return code
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// envOf returns an environment holding exactly kv.
func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// logSink is run's stderr in tests: it keeps every JSON log record and announces the address
// of the "listening" record.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	records []map[string]any
	addr    chan string
}

func newLogSink() *logSink { return &logSink{addr: make(chan string, 1)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(p)) // slog writes whole records, one per Write
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		s.records = append(s.records, r)
		if a, ok := r["addr"].(string); ok && r["msg"] == "listening" {
			s.addr <- a
		}
	}
	return len(p), nil
}

// find returns the first record with message msg whose attributes include want.
func (s *logSink) find(msg string, want map[string]any) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, r := range s.records {
		if r["msg"] != msg {
			continue
		}
		for k, v := range want {
			if r[k] != v {
				continue next
			}
		}
		return r
	}
	return nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// running is run() serving in the background on a random loopback port.
type running struct {
	addr   string // host:port
	logs   *logSink
	cancel context.CancelFunc
	done   chan error // run's result
}

// startRun starts run with args (plus a random port and JSON debug logs) and stops it at cleanup.
func startRun(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{logs: newLogSink(), cancel: cancel, done: make(chan error, 1)}
	args = append([]string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug"}, args...)
	var stdout bytes.Buffer
	go func() { r.done <- run(ctx, args, noEnv, &stdout, r.logs) }() // owner: the test; ends at cancel
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	select {
	case r.addr = <-r.logs.addr:
	case err := <-r.done:
		t.Fatalf("run returned before listening: %v\nlogs:\n%s", err, r.logs)
	case <-time.After(5 * time.Second):
		t.Fatalf("no listening log within 5s; logs:\n%s", r.logs)
	}
	return r
}

// stop cancels run's context and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
		return nil
	}
}

func TestRunUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"frobnicate"}, noEnv, new(bytes.Buffer), new(bytes.Buffer))
	if exitCode(err) != 2 || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("got %v (exit %d), want a usage error naming the command", err, exitCode(err))
	}
}
