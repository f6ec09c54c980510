package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestClientMovesToTheNextURL: raw mode with two servers. The first shuts down (1001: come
// back); the client connects to the second and the lines that follow are answered there. When
// that one goes too, nothing answers any more: the exit status is the loss's, 5.
func TestClientMovesToTheNextURL(t *testing.T) {
	a, b := startRun(t), startRun(t)
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, a.wsURL(), b.wsURL())
	c.stderr.waitFor(t, "connected: "+a.wsURL())
	fmt.Fprintln(w, "one")
	c.stdout.waitFor(t, "one done")

	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	c.stderr.waitFor(t, "connection to "+a.wsURL()+" ended: 1001 server shutting down; trying the other URLs")
	c.stderr.waitFor(t, "connected: "+b.wsURL())
	fmt.Fprintln(w, "two")
	c.stdout.waitFor(t, "two done")

	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	err, code := c.result(t)
	if code != exitTryAgain || err.Error() != "closed: 1001 server shutting down" {
		t.Fatalf("exit %d, %v; want 5 and the 1001 of the last server\nstderr:\n%s", code, err, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "cannot connect to any of the 2 URLs") {
		t.Fatalf("stderr does not say that no URL answered:\n%s", c.stderr.String())
	}
}

// TestClientConnectsToTheFirstThatAnswers: a URL that refuses is passed over; when none answers,
// each failure is said and the exit status is 1.
func TestClientConnectsToTheFirstThatAnswers(t *testing.T) {
	down := startRun(t)
	dead := down.wsURL()
	if err := down.stop(t); err != nil {
		t.Fatal(err)
	}
	live := startRun(t)
	out, errs := runClientT(t, "", 0, "-x", "hi", dead, live.wsURL())
	if out != "hi done\n" || !strings.Contains(errs, "connected: "+live.wsURL()) {
		t.Fatalf("stdout %q, stderr %q", out, errs)
	}
	_, errs = runClientT(t, "", 1, "-x", "hi", dead, dead)
	if !strings.Contains(errs, "cannot connect to any of the 2 URLs") || strings.Count(errs, dead) != 2 {
		t.Fatalf("stderr %q", errs)
	}
}

// readPubs decodes the publication lines of -sub's stdout.
func readPubs(t *testing.T, stdout string) []pubLine {
	t.Helper()
	var pubs []pubLine
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var p pubLine
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("a line of stdout that is not a publication: %q", line)
		}
		pubs = append(pubs, p)
	}
	return pubs
}

// TestClientPubSubFailover: -sub with two servers, each with a broker of its own. What stdin
// publishes is printed; when the first server shuts down the client subscribes on the second
// (recovery refused plainly: another broker) and what it publishes there is printed too.
func TestClientPubSubFailover(t *testing.T) {
	a, b := startRun(t), startRun(t)
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, "-sub", "chat", a.wsURL(), b.wsURL())
	c.stderr.waitFor(t, "subscribed: chat at ")
	fmt.Fprintln(w, `{"text":"hello"}`)
	c.stdout.waitFor(t, `"offset":1,"data":{"text":"hello"}}`)

	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	c.stderr.waitFor(t, "connected: "+b.wsURL())
	c.stderr.waitFor(t, "not recovered: what came after ")
	fmt.Fprintln(w, "again") // not JSON: published as a string
	c.stdout.waitFor(t, `"offset":1,"data":"again"}`)
	w.Close()
	if err, code := c.result(t); code != 0 {
		t.Fatalf("exit %d, %v\nstderr:\n%s", code, err, c.stderr.String())
	}
	pubs := readPubs(t, c.stdout.String())
	if len(pubs) != 2 || pubs[0].Epoch == pubs[1].Epoch || pubs[1].Recovered {
		t.Fatalf("publications %+v", pubs)
	}
	c.stderr.waitFor(t, "closed: 1000")
}

// TestClientPubSubRecoversThroughAnotherNode: two servers share one hub, as two nodes share a
// broker. The one in use dies (1006) while publications are made; the client subscribes again on
// the other from the last publication printed and prints every one, once, in order.
func TestClientPubSubRecoversThroughAnotherNode(t *testing.T) {
	h, err := hub.New(context.Background(), memory.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	type node struct {
		srv *wsgate.Server
		hs  *httptest.Server
		url string
	}
	var nodes [2]node
	for i := range nodes {
		srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{
			Subprotocols: []string{protocol.Subprotocol},
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		nodes[i] = node{srv, hs, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
		t.Cleanup(func() { _ = srv.Close(); hs.Close() })
	}
	stdin, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	c := startClient(t, stdin, "-sub", "news", nodes[0].url, nodes[1].url)
	c.stderr.waitFor(t, "subscribed: news at ")
	ctx := context.Background()
	_, _ = h.Publish(ctx, "news", []byte(`1`))
	c.stdout.waitFor(t, `"offset":1,"data":1}`)

	_ = nodes[0].srv.Close() // every connection dropped: 1006
	nodes[0].hs.Close()
	for i := 2; i <= 4; i++ {
		_, _ = h.Publish(ctx, "news", []byte(fmt.Sprint(i)))
	}
	c.stderr.waitFor(t, "connected: "+nodes[1].url)
	c.stderr.waitFor(t, ", recovered from ") // usually at /4: the move waits a jittered delay
	_, _ = h.Publish(ctx, "news", []byte(`5`))
	c.stdout.waitFor(t, `"offset":5,"data":5}`)
	w.Close()
	if err, code := c.result(t); code != 0 {
		t.Fatalf("exit %d, %v\nstderr:\n%s", code, err, c.stderr.String())
	}
	for i, p := range readPubs(t, c.stdout.String()) {
		if p.Offset != uint64(i+1) || string(p.Data) != fmt.Sprint(i+1) {
			t.Fatalf("line %d: %+v; want every offset once, in order\nstdout:\n%s", i+1, p, c.stdout.String())
		}
	}
}
