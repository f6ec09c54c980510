package clustertest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// node is one wsgate node: a Hub on its own broker/nats.Broker (its own NATS connection), served
// by a wsgate.Server on loopback.
type node struct {
	hub    *hub.Hub
	broker *natsbroker.Broker
	url    string // ws://
}

// nodeOptions are the tests' defaults for a node's broker and hub: a history long enough for
// every test, quick reconnects to NATS, nothing logged.
func nodeOptions(natsURL string, bo natsbroker.Options, ho hub.Options) (natsbroker.Options, hub.Options) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if bo.Conn == nil {
		bo.URL = natsURL
	}
	bo.ConnectOptions = append([]natsgo.Option{natsgo.ReconnectWait(50 * time.Millisecond)}, bo.ConnectOptions...)
	if bo.HistorySize == 0 {
		bo.HistorySize = 10000
	}
	bo.Logger, ho.Logger = quiet, quiet
	return bo, ho
}

// startNode starts a node on the NATS servers at natsURL (or bo.Conn), stopped at the end of the
// test: its server shut down, then its hub and broker closed.
func startNode(t testing.TB, natsURL string, bo natsbroker.Options, ho hub.Options) *node {
	t.Helper()
	bo, ho = nodeOptions(natsURL, bo, ho)
	b, err := natsbroker.New(&bo)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(context.Background(), b, &ho)
	if err != nil {
		_ = b.Close(context.Background())
		t.Fatal(err)
	}
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: ho.Logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
		_ = h.Close(ctx)
	})
	return &node{hub: h, broker: b, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// The environment of a child node: the NATS URL it connects to, and its PresenceTTL.
const (
	childNATSEnv = "WSGATE_CLUSTERTEST_NODE_NATS"
	childTTLEnv  = "WSGATE_CLUSTERTEST_NODE_TTL"
)

// childNode is a node running in a process of its own (this test binary, started again), so
// that a test can kill it as kill -9 does: no goodbye on NATS, no close frame on its sockets.
type childNode struct {
	url  string // ws://
	name string // its broker's Node(): the prefix of its connections in presence
	cmd  *exec.Cmd
}

// startChildNode starts a child node on natsURL and waits until it serves. It is killed at the
// end of the test if the test did not kill it.
func startChildNode(t testing.TB, natsURL string, ttl time.Duration) *childNode {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childNATSEnv+"="+natsURL, childTTLEnv+"="+ttl.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child stops when it closes: when this process dies too
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childNode{cmd: cmd}
	t.Cleanup(func() {
		stdin.Close()
		c.kill()
	})
	ready := make(chan string, 1)
	go func() { // owner: this function; ends with the child's first line or its end
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if _, err := fmt.Sscanf(line, "%s %s", &c.url, &c.name); err != nil {
			t.Fatalf("child node said %q: %v", line, err)
		}
	case <-time.After(20 * time.Second):
		c.kill()
		<-ready
		t.Fatal("child node not serving within 20s")
	}
	return c
}

// kill kills the child node (SIGKILL) and waits for it to end; a no-op once done.
func (c *childNode) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	}
}

// runChildNode is the child node's main: it serves until its stdin closes, or it is killed.
func runChildNode(natsURL string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child node:", err)
		return 1
	}
	ttl, err := time.ParseDuration(os.Getenv(childTTLEnv))
	if err != nil {
		return fail(err)
	}
	bo, ho := nodeOptions(natsURL, natsbroker.Options{}, hub.Options{PresenceTTL: ttl})
	b, err := natsbroker.New(&bo)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	h, err := hub.New(ctx, b, &ho)
	if err != nil {
		return fail(err)
	}
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: ho.Logger})
	if err != nil {
		return fail(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l) // owner: this function; stopped below when stdin closes
	fmt.Printf("ws://%s %s\n", l.Addr(), b.Node())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Shutdown(ctx)
	_ = hs.Close()
	_ = h.Close(ctx)
	return 0
}
