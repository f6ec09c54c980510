package main

// Hostile clients of issue 9 against `wsgate serve` running as its own process: what one
// anonymous connection can make the node spend, read from /proc (resident memory, CPU time).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// builds are the binaries the tests run, by package, built once per test run.
var builds sync.Map // package → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// wsgateBinary builds this command once per test run.
func wsgateBinary(t *testing.T) string { return buildBinary(t, ".", "wsgate") }

// buildBinary builds pkg as name in a temporary directory, once per test run.
func buildBinary(t *testing.T, pkg, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, new(build))
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "wsgate-test-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// process is a `wsgate serve` started for one test and stopped (by PID) when it ends.
type process struct {
	cmd       *exec.Cmd
	addr      string
	listening chan string   // the address, once it listens
	exited    chan struct{} // closed when its stderr closes
	killOnce  sync.Once

	mu   sync.Mutex
	logs []map[string]any // the JSON log lines of stderr so far
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := launch(t, args...)
	p.await(t, 10*time.Second)
	return p
}

// launch starts `wsgate serve` with args (plus a random port and JSON logs) without waiting for
// it to listen: nodes of a cluster wait for each other before they do. It is killed at cleanup.
func launch(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(wsgateBinary(t), append([]string{"serve", "-addr", "127.0.0.1:0", "-log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, listening: make(chan string, 1), exited: make(chan struct{})}
	t.Cleanup(p.kill)
	go func() { // owner: the test; ends when the process's stderr closes
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r map[string]any
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				r = map[string]any{"raw": sc.Text()} // such as main's last word
			}
			if r["msg"] == "listening" {
				p.listening <- r["addr"].(string)
			}
			p.mu.Lock()
			p.logs = append(p.logs, r)
			p.mu.Unlock()
		}
	}()
	return p
}

// await waits up to timeout for the process to listen and sets p.addr.
func (p *process) await(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case p.addr = <-p.listening:
	case <-p.exited:
		t.Fatalf("wsgate serve exited before listening; logs:\n%s", p.logText())
	case <-time.After(timeout):
		t.Fatalf("wsgate serve did not start listening within %v; logs:\n%s", timeout, p.logText())
	}
}

// kill stops the process with SIGKILL (kill -9), by its PID, and reaps it.
func (p *process) kill() {
	p.killOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

// terminate sends SIGTERM and waits up to timeout for the process to exit; its error is the
// exit status's, nil for 0.
func (p *process) terminate(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited: // stderr closed: the process is exiting
	case <-time.After(timeout):
		return fmt.Errorf("still running %v after SIGTERM", timeout)
	}
	var err error
	p.killOnce.Do(func() { err = p.cmd.Wait() })
	return err
}

// logText is the process's log so far, one JSON record a line.
func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, r := range p.logs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// rss is the process's resident memory in bytes.
func (p *process) rss(t *testing.T) int64 {
	return p.procNumber(t, "status", `VmRSS:\s+(\d+) kB`) << 10
}

// rchar is how many bytes the process has read through system calls, sockets included.
func (p *process) rchar(t *testing.T) int64 { return p.procNumber(t, "io", `rchar: (\d+)`) }

// procNumber is the number that pattern's group matches in /proc/PID/file.
func (p *process) procNumber(t *testing.T, file, pattern string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.cmd.Process.Pid, file))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(pattern).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/PID/%s", pattern, file)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// cpu is the CPU time the process has used, user and system.
func (p *process) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat(5)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// waitLog polls the process's log for up to 10 s for a line with msg and returns it, or nil.
func (p *process) waitLog(msg string) map[string]any {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		for _, r := range p.logs {
			if r["msg"] == msg {
				p.mu.Unlock()
				return r
			}
		}
		p.mu.Unlock()
	}
	return nil
}

func (p *process) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial("ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// TestHostileHistoryOfUnusedNames: 20,000 history requests for names nobody uses, from one
// anonymous connection (each kept a 9 KB ring for 5 minutes: 190 MB; a million reached 4.4 GB).
func TestHostileHistoryOfUnusedNames(t *testing.T) {
	p := startProcess(t, "-request-rate", "-1")
	ws := p.dial(t)
	pipeline(t, ws, 100, func(i int) string { return fmt.Sprintf(`{"id":%d,"op":"ping"}`, i) }, func(int, map[string]json.RawMessage) {})
	before := p.rss(t)
	pipeline(t, ws, 20000, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"history","channel":"unused-%d","limit":1000}`, i, i)
	}, func(i int, m map[string]json.RawMessage) {
		if m["result"] == nil {
			t.Fatalf("reply %d: %s", i, m["error"])
		}
	})
	grown := p.rss(t) - before
	t.Logf("RSS %d MB before, grew by %d KB over 20,000 history requests", before>>20, grown>>10)
	if grown > 32<<20 {
		t.Fatalf("20,000 history requests of unused names grew the RSS by %d MB", grown>>20)
	}
}

// TestHostileHistoryFill: 5,000 publications of 60 KB over 300 channels (300 MB) against a
// 32 MiB history cap: the broker evicts the oldest history, so the attacker is not refused and a
// second connection can still publish 100 of 1 KB (before, every publication got 202 for the 5
// minutes of the TTL), and the RSS stays within 4 times the cap, the garbage collector's headroom
// included (30,000 such publications once held 2.2 GB).
func TestHostileHistoryFill(t *testing.T) {
	p := startProcess(t, "-request-rate", "-1", "-history-max-bytes", fmt.Sprint(32<<20))
	ws := p.dial(t)
	before := p.rss(t)
	data := `"` + strings.Repeat("x", 60000) + `"`
	full := 0
	pipeline(t, ws, 5000, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"publish","channel":"c%d","data":%s}`, i, i%300, data)
	}, func(i int, m map[string]json.RawMessage) {
		if m["error"] != nil {
			var e protocol.Error
			if json.Unmarshal(m["error"], &e); e.Code != protocol.CodeFull {
				t.Fatalf("attacker's publication %d: %s", i, m["error"])
			}
			full++
		}
	})
	other := p.dial(t)
	small := `"` + strings.Repeat("o", 1000) + `"`
	pipeline(t, other, 100, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"publish","channel":"other","data":%s}`, i, small)
	}, succeeds(t, "a second connection's publication, after the attacker filled the cap,"))
	grown := p.rss(t) - before
	t.Logf("%d of 5,000 publications of 60 KB refused, then 100 of 1 KB from a second connection taken; RSS grew by %d MB (cap 32 MiB)", full, grown>>20)
	if full > 0 {
		t.Fatalf("%d of the attacker's publications refused: the oldest history should have made room", full)
	}
	if grown > 128<<20 {
		t.Fatalf("RSS grew by %d MB under a 32 MiB history cap", grown>>20)
	}
}

// TestHostileBigHistoryReplies: 200 requests for a history of 100 × 60 KB (6 MB each, against a
// 1 MiB send queue) each get a reply — one page — and cost little CPU: before, none was answered
// and each burned ~40 ms encoding what was then dropped.
func TestHostileBigHistoryReplies(t *testing.T) {
	p := startProcess(t, "-request-rate", "-1")
	ws := p.dial(t)
	data := `"` + strings.Repeat("y", 60000) + `"`
	pipeline(t, ws, 100, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"publish","channel":"big","data":%s}`, i, data)
	}, succeeds(t, "publication"))
	cpu := p.cpu(t)
	pubs := 0
	pipeline(t, ws, 200, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"history","channel":"big","limit":100}`, 100+i)
	}, func(i int, m map[string]json.RawMessage) {
		var h protocol.HistoryResult
		if json.Unmarshal(m["result"], &h) != nil || !h.More || h.Offset != 100 || len(h.Publications) == 0 {
			t.Fatalf("history reply %d: %.300s", i, m["result"])
		}
		pubs += len(h.Publications)
	})
	used := p.cpu(t) - cpu
	t.Logf("200 paged history replies (%d publications in all) cost %v of server CPU", pubs, used)
	if used > 4*time.Second {
		t.Fatalf("200 history requests cost %v of server CPU", used)
	}
}

// TestHostileBurstToAFastReader: 2,000 publications pipelined as fast as one connection can, to a
// channel another connection reads as fast as it can. Before, the reader was closed with 1008
// before it had read anything, a code the JS client takes as final. Now it gets all 2,000 in
// order, or is closed with 1013 (slow consumer: reconnect) and recovers the rest by subscribing
// again from its last position; the history holds the whole burst.
func TestHostileBurstToAFastReader(t *testing.T) {
	const n = 2000
	p := startProcess(t, "-request-rate", "-1", "-history-size", fmt.Sprint(n))
	r := &burstReader{addr: p.addr, channel: "burst"}
	if err := r.subscribe(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.readUntil(n) }() // owner: the test; r.stop ends it
	t.Cleanup(func() { r.stop(); <-done })
	pipeline(t, p.dial(t), n, func(i int) string {
		return fmt.Sprintf(`{"id":%d,"op":"publish","channel":"burst","data":%d}`, i, i)
	}, succeeds(t, "publication"))
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the reader has %d of %d publications after a minute", r.position(), n)
	}
	t.Logf("the reader got all %d publications in order: closed %d times with 1013, %d publications recovered after reconnecting",
		n, r.closes, r.recovered)
}

// TestHostilePingsInARow: ten pings in one write get ten pongs, each with its ping's payload, in
// order (before, only the last was answered).
func TestHostilePingsInARow(t *testing.T) {
	c := rawDial(t, startProcess(t).addr)
	var b []byte
	for i := range 10 {
		b = append(b, wsFrame(true, opPing, fmt.Appendf(nil, "ping %d", i))...)
	}
	c.send(append(b, wsFrame(true, opText, []byte("after"))...))
	var pongs []string
	for deadline := time.Now().Add(rawWait); ; {
		op, payload, err := c.readFrame(deadline)
		if err != nil {
			t.Fatalf("after pongs %q: %v", pongs, err)
		}
		if op == opText && string(payload) == "after done" {
			break
		}
		if op != opPong {
			t.Fatalf("after pongs %q: opcode %#x %q", pongs, op, payload)
		}
		pongs = append(pongs, string(payload))
	}
	for i := range 10 {
		if want := fmt.Sprintf("ping %d", i); i >= len(pongs) || pongs[i] != want {
			t.Fatalf("pongs %q; want one per ping, in order, with its payload", pongs)
		}
	}
	if len(pongs) != 10 {
		t.Fatalf("%d pongs for 10 pings: %q", len(pongs), pongs)
	}
}

// TestHostileHugeHandshakes: a 1 MB header, a 1 MB request target and 10,000 small headers are
// refused (each was upgraded, and its headers kept for the connection's life). net/http answers
// 431 for any request beyond -max-header-bytes plus 4 KiB, a long target included, before wsgate
// sees it; a target within that margin gets wsgate's 414.
func TestHostileHugeHandshakes(t *testing.T) {
	p := startProcess(t)
	var many strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&many, "X-%d: v\r\n", i)
	}
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"a 1 MB header", upgradeHead("/ws", p.addr, "X-Big: "+strings.Repeat("b", 1<<20)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"a 1 MB request target", upgradeHead("/ws?q="+strings.Repeat("u", 1<<20), p.addr, ""), http.StatusRequestHeaderFieldsTooLarge},
		{"a 17 KB request target", upgradeHead("/ws?q="+strings.Repeat("u", 17<<10), p.addr, ""), http.StatusRequestURITooLong},
		{"10,000 small headers", upgradeHead("/ws", p.addr, many.String()), http.StatusRequestHeaderFieldsTooLarge},
	} {
		if got, body := rawStatus(t, p.addr, tc.req); got != tc.want {
			t.Errorf("%s: answered %d %.80q, want %d", tc.name, got, body, tc.want)
		}
	}
}

// TestHostileIdleKeepAlives: 300 idle keep-alive connections (a GET /healthz, then silence)
// against -max-http-connections 100 do not keep a WebSocket client out, and the process holds
// about 100 of them (before, 20,000 exhausted its file descriptors).
func TestHostileIdleKeepAlives(t *testing.T) {
	p := startProcess(t, "-max-http-connections", "100", "-http-idle-timeout", "1m")
	var conns []net.Conn
	for range 300 {
		conns = append(conns, keepAlive(t, p.addr, "127.0.0.1"))
	}
	echo(t, dialWS(t, p.addr, ""), websocket.TextMessage, "x")
	open := waitOpen(conns, func(n int) bool { return n <= 100 })
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 300 idle keep-alives and a WebSocket: %d of them still open, %d file descriptors in the process", open, len(fds))
	if open > 100 {
		t.Errorf("%d idle keep-alive connections open, want at most -max-http-connections 100", open)
	}
	if len(fds) > 100+30 {
		t.Errorf("the process holds %d file descriptors, want about 100 sockets and its own few", len(fds))
	}
}

// TestHostileEndlessMessage: a message of empty continuation frames is closed with 1009 at once
// (4 connections once sent 200 million such frames), and a peer trickling a frame a byte at a
// time is closed by -message-timeout although it keeps sending (every byte counted as liveness).
func TestHostileEndlessMessage(t *testing.T) {
	p := startProcess(t, "-message-timeout", "500ms", "-close-timeout", "1s")
	t.Run("empty continuations", func(t *testing.T) {
		c := rawDial(t, p.addr)
		b := wsFrame(false, opText, []byte("a"))
		for range 5000 {
			b = append(b, wsFrame(false, opCont, nil)...)
		}
		start := time.Now()
		_ = c.trySend(b) // the server stops reading at the frame limit
		code, reason := c.closeFrame(start.Add(10 * time.Second))
		took := time.Since(start)
		t.Logf("closed with %d %q after %v", code, reason, took)
		if code != 1009 || !strings.Contains(reason, "frames") || took > 2*time.Second {
			t.Errorf("closed with %d %q after %v, want 1009 naming the frames within 2s", code, reason, took)
		}
	})
	t.Run("a byte every 50ms", func(t *testing.T) {
		c := rawDial(t, p.addr)
		frame := wsFrame(true, opBinary, make([]byte, 1000)) // 50 s at this pace
		var sent atomic.Int64
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { // owner: this subtest, which stops it and waits
			defer close(stopped)
			tk := time.NewTicker(50 * time.Millisecond)
			defer tk.Stop()
			for i := range frame {
				if c.trySend(frame[i:i+1]) != nil {
					return
				}
				sent.Add(1)
				select {
				case <-stop:
					return
				case <-tk.C:
				}
			}
		}()
		defer func() { close(stop); <-stopped }()
		start := time.Now()
		code, reason := c.closeFrame(start.Add(10 * time.Second)) // 0: dropped without a close frame
		closed, bytes := time.Since(start), sent.Load()
		ended := c.ended(start.Add(10 * time.Second))
		gone := time.Since(start)
		t.Logf("closed with %d %q after %v and %d bytes trickled; connection ended after %v", code, reason, closed, bytes, gone)
		// The server's clock is coarse (a tenth of the timeout): it may close a little early.
		if !(code == 1008 && reason == "message timeout" || code == 0) || closed < 250*time.Millisecond || closed > 3*time.Second {
			t.Errorf("closed with %d %q after %v, want 1008 message timeout (or dropped) about 500ms after the first byte", code, reason, closed)
		}
		if !ended || gone > 5*time.Second {
			t.Errorf("the connection ended %v (after %v), want within -message-timeout + -close-timeout and slack", ended, gone)
		}
	})
}

// TestHostileSlowConsumerIsNotRead: a client that sends 50,000 messages of 1 KB (50 MB) to be
// echoed and never reads is closed as a slow consumer; from then on the server reads no more of
// it and drops it at -close-timeout (before, it read 2.9 GB until the write timeout and cut it
// with a reset). rchar of /proc/PID/io counts what the server read.
func TestHostileSlowConsumerIsNotRead(t *testing.T) {
	const closeTimeout, messages = time.Second, 50000
	p := startProcess(t, "-send-queue-bytes", "65536", "-read-limit", "16384", "-max-data-size", "16384",
		"-close-timeout", closeTimeout.String(), "-log-level", "debug")
	c := rawDial(t, p.addr)
	// A fixed receive buffer: the echoes back up after 128 KiB instead of the 32 MiB autotuning allows.
	if err := c.nc.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	var batch []byte
	for range 64 {
		batch = append(batch, wsFrame(true, opText, bytes.Repeat([]byte("m"), 1000))...)
	}
	offered := int64(messages / 64 * len(batch))
	readBefore := p.rchar(t)
	start := time.Now()
	var written int64
	lastProgress := start
	var err error
	for off := 0; written < offered && time.Since(lastProgress) < 10*time.Second; {
		c.nc.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		var n int
		n, err = c.nc.Write(batch[off:])
		if n > 0 {
			written, off, lastProgress = written+int64(n), (off+n)%len(batch), time.Now()
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break // the server dropped the connection
		}
	}
	gone := time.Now()
	read := p.rchar(t) - readBefore
	t.Logf("the client wrote %.1f of %.1f MiB; the server read %.1f MiB; the connection was dropped %v after the client's writes stalled (%v after the first)",
		float64(written)/(1<<20), float64(offered)/(1<<20), float64(read)/(1<<20), gone.Sub(lastProgress).Round(time.Millisecond), gone.Sub(start).Round(time.Millisecond))
	if written >= offered || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was not dropped: %.1f MiB written, still open %v after the writes stalled", float64(written)/(1<<20), gone.Sub(lastProgress))
	}
	if read > 16<<20 {
		t.Errorf("the server read %d MiB of a client that never reads, want its reading to stop at the close", read>>20)
	}
	if stalled := gone.Sub(lastProgress); stalled > closeTimeout+2*time.Second {
		t.Errorf("dropped %v after the server stopped reading, want within -close-timeout %v and slack", stalled, closeTimeout)
	}
	if l := p.waitLog("connection closed"); l == nil || l["code"] != float64(1013) || l["reason"] != "slow consumer" {
		t.Errorf("logged %v, want a close with 1013 slow consumer", l)
	}
}

// TestHostileRebinding: with -allowed-hosts a DNS-rebinding page (Host and Origin evil.example:P,
// which agree) is refused, and an https:// origin is not the same origin as a plain-http server.
func TestHostileRebinding(t *testing.T) {
	p := startProcess(t, "-allowed-hosts", "localhost")
	_, port, _ := net.SplitHostPort(p.addr)
	for host, want := range map[string]int{"evil.example:" + port: http.StatusForbidden, "localhost:" + port: http.StatusSwitchingProtocols} {
		if got, body := rawStatus(t, p.addr, upgradeHead("/ws", host, "Origin: http://"+host+"\r\n")); got != want {
			t.Errorf("-allowed-hosts localhost, Host and Origin %s: answered %d %.80q, want %d", host, got, body, want)
		}
	}
	open := startProcess(t)
	for origin, want := range map[string]int{"https://" + open.addr: http.StatusForbidden, "http://" + open.addr: http.StatusSwitchingProtocols} {
		if got, body := rawStatus(t, open.addr, upgradeHead("/ws", open.addr, "Origin: "+origin+"\r\n")); got != want {
			t.Errorf("plain http, Origin %s: answered %d %.80q, want %d", origin, got, body, want)
		}
	}
}

// TestHostileHandshakeDetails: two Sec-WebSocket-Key headers and a GET with a body are refused
// (both were upgraded), and no refusal echoes a 10 KB request target (up to 60 KB came back).
func TestHostileHandshakeDetails(t *testing.T) {
	p := startProcess(t)
	target := "/ws?" + strings.Repeat("MARKER", 10<<10/6)
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"two keys", upgradeHead(target, p.addr, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"), http.StatusBadRequest},
		{"a body", upgradeHead(target, p.addr, "Content-Length: 5\r\n") + "hello", http.StatusBadRequest},
		{"a foreign origin", upgradeHead(target, p.addr, "Origin: http://evil.example\r\n"), http.StatusForbidden},
	} {
		got, body := rawStatus(t, p.addr, tc.req)
		if got != tc.want {
			t.Errorf("%s: answered %d %.80q, want %d", tc.name, got, body, tc.want)
		}
		if len(body) >= 1<<10 || strings.Contains(body, "MARKER") || strings.Contains(body, "gws") {
			t.Errorf("%s: the refusal's body (%d bytes) quotes the request or names the transport: %.100q", tc.name, len(body), body)
		}
	}
}
