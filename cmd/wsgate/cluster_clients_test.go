package main

// The clients' several endpoints against a real cluster: three `wsgate serve -cluster-listen`
// processes sharing one replicated stream. The node of a client that follows a channel is killed
// (SIGKILL) while another node publishes; the client moves to a surviving node, subscribes there
// from its last publication and ends with every publication once, in offset order.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/client/pubsub"
	"github.com/wsgate/wsgate/protocol"
)

const (
	failoverTotal  = 100 // publications, one every 50 ms
	failoverKillAt = 30  // the client's node is killed once this many are acknowledged
)

// failover is what clusterFailover saw.
type failover struct {
	urls      []string // of n1, n2, n3; n1 was killed
	epoch     string   // the channel's
	recovered []uint64 // the offsets the client delivered as recovered, in order
}

// follower is the client under test, as clusterFailover watches it.
type follower struct {
	delivered func() []pubLine // what it delivered so far, in order
	// reopened is when its connection to a surviving node opened, the zero time if not known:
	// publications acknowledged before it were made while it moved, and must be recovered.
	reopened func() time.Time
}

// clusterFailover runs the scenario on a new cluster of three nodes (presence TTL 1 s). start
// starts the client under test with the three URLs: it must connect to the first (n1, the one
// killed) and follow "feed". A watcher on n3 follows the channel's presence; n2 publishes failoverTotal publications,
// one every 50 ms, and n1 is killed after failoverKillAt of them. clusterFailover checks that the
// client ends with the stream's publications (read from history on n3), each once, in offset
// order, those it missed while moving delivered as recovered (contiguous), and that n1's
// connection left the watcher's presence within 3 s. When n1 led the stream, publishing waits for
// the election of another leader (seconds), and the client may have moved before anything was
// published: then none is recovered.
func clusterFailover(t *testing.T, start func(urls []string) follower) failover {
	t.Helper()
	began := time.Now()
	c := startEmbeddedCluster(t, 3, "-presence-ttl", "1s")
	doomed, publishing, watching := c.nodes[0], c.nodes[1], c.nodes[2]
	f := failover{}
	for _, p := range c.nodes {
		f.urls = append(f.urls, "ws://"+p.addr+"/ws")
	}
	t.Logf("%v: the cluster listens", time.Since(began).Round(time.Millisecond))

	watcher := mustDial(t, watching)
	if _, err := watcher.subscribe("feed", nil, true); err != nil {
		t.Fatal(err)
	}
	client := start(f.urls)
	delivered := client.delivered
	// The client's subscription, seen on n3: a connection of n1 (named n1-…:number) joins.
	var conn string
	for conn == "" {
		select {
		case p := <-watcher.presence:
			for _, m := range p.Join {
				if strings.HasPrefix(m.Conn, "n1-") {
					conn = m.Conn
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the client's subscription on n1 did not join the presence seen on n3 within 10s")
		}
	}

	pub := mustDial(t, publishing)
	acked := map[uint64]string{}         // offset → data of the acknowledged publications
	ackedAfter := map[uint64]time.Time{} // offset → when acknowledged, of those after the kill
	var killed time.Time
	var top uint64
	leave := make(chan time.Duration, 1) // from the kill to the leave of conn on n3; -1 if none within 5 s
	t0 := time.Now()
	for i := 1; i <= failoverTotal; i++ {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * 50 * time.Millisecond)))
		data := fmt.Sprintf("p%d", i)
		r := publishRetrying(t, pub, "feed", data)
		acked[r.Offset], f.epoch, top = data, r.Epoch, max(top, r.Offset)
		if !killed.IsZero() {
			ackedAfter[r.Offset] = time.Now()
		}
		if i != failoverKillAt {
			continue
		}
		waitFor(t, func() bool { return len(delivered()) >= failoverKillAt }, "the first publications, live")
		killed = time.Now()
		doomed.kill()
		t.Logf("%v: n1 killed", time.Since(began).Round(time.Millisecond))
		go func() { // owner: the test; ends at the leave or after 5 s
			timeout := time.After(5 * time.Second)
			for {
				select {
				case p := <-watcher.presence:
					for _, m := range p.Leave {
						if m.Conn == conn {
							leave <- time.Since(killed)
							return
						}
					}
				case <-timeout:
					leave <- -1
					return
				}
			}
		}()
	}
	waitFor(t, func() bool { return uint64(len(delivered())) >= top }, fmt.Sprintf("every publication up to %d", top))
	time.Sleep(200 * time.Millisecond) // anything delivered twice would come now

	h, err := watcher.history("feed", &v1Position{Epoch: f.epoch}, 1000)
	if err != nil || !h.Complete || h.Epoch != f.epoch {
		t.Fatalf("history on n3: %+v, %v", h, err)
	}
	got := delivered()
	if len(got) != len(h.Publications) {
		t.Errorf("%d publications delivered, the stream has %d", len(got), len(h.Publications))
	}
	for i, p := range got {
		want := v1Pub{Offset: uint64(i + 1)}
		if i < len(h.Publications) {
			want = h.Publications[i]
		}
		if p.Channel != "feed" || p.Epoch != f.epoch || p.Offset != uint64(i+1) || want.Offset != p.Offset || string(p.Data) != string(want.Data) {
			t.Fatalf("publication %d delivered: %+v (data %s); the stream has offset %d, data %s", i+1, p, p.Data, want.Offset, want.Data)
		}
		if p.Recovered {
			f.recovered = append(f.recovered, p.Offset)
		}
	}
	for offset, data := range acked {
		if offset > uint64(len(got)) || string(got[offset-1].Data) != `"`+data+`"` {
			t.Errorf("the acknowledged publication %s at offset %d was not delivered there", data, offset)
		}
	}
	if len(f.recovered) > 0 && (f.recovered[0] != failoverKillAt+1 || f.recovered[len(f.recovered)-1]-f.recovered[0] != uint64(len(f.recovered)-1)) {
		t.Errorf("recovered offsets %v: want those after %d, the last delivered before the kill, contiguous", f.recovered, failoverKillAt)
	}
	moving := 0 // acknowledged while it moved
	if reopened := client.reopened(); !reopened.IsZero() {
		for offset, at := range ackedAfter {
			if at.Before(reopened) {
				moving++
				if offset > uint64(len(got)) || !got[offset-1].Recovered {
					t.Errorf("publication %d, acknowledged while the client moved, was not delivered as recovered", offset)
				}
			}
		}
	}
	switch d := <-leave; {
	case d < 0:
		t.Errorf("n1's connection %s did not leave the presence seen on n3 within 5s", conn)
	case d > 3*time.Second:
		t.Errorf("n1's connection left the presence seen on n3 %v after the kill, want within 1.3 s and some slack", d)
	default:
		t.Logf("%d publications, %d recovered after the move (%d acknowledged while it moved); the leave came %v after the kill; %v in all",
			len(got), len(f.recovered), moving, d.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	}
	return f
}

// waitFor polls cond for up to 15 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 15s waiting for %s", what)
		}
	}
}

// TestSessionMovesThroughTheCluster: a client/pubsub Session of the three nodes.
func TestSessionMovesThroughTheCluster(t *testing.T) {
	var mu sync.Mutex
	var got []pubLine
	var subscribed []pubsub.Subscribed
	var connected []string
	var reopened time.Time
	var gaps []pubsub.Gap
	var errs []error
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	f := clusterFailover(t, func(urls []string) follower {
		s, err := pubsub.New(urls, &pubsub.Options{
			InOrder:  true,
			MinDelay: 400 * time.Millisecond, MaxDelay: 400 * time.Millisecond, // a move takes 396 ms:
			Random: func() float64 { return 0.99 }, // some publications are made meanwhile
			OnConnect: func(url string) {
				mu.Lock()
				connected, reopened = append(connected, url), time.Now()
				mu.Unlock()
			},
			OnSubscribed: func(s pubsub.Subscribed) {
				mu.Lock()
				subscribed = append(subscribed, s)
				mu.Unlock()
			},
			OnPublication: func(p pubsub.Publication) {
				mu.Lock()
				got = append(got, pubLine{p.Channel, p.Epoch, p.Offset, p.Data, p.Recovered})
				mu.Unlock()
			},
			OnGap:   func(g pubsub.Gap) { mu.Lock(); gaps = append(gaps, g); mu.Unlock() },
			OnError: func(_ string, err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe("feed", nil); err != nil {
			t.Fatal(err)
		}
		go func() { ran <- s.Run(ctx) }() // owner: the test; ended by cancel, waited for at cleanup
		t.Cleanup(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		return follower{
			delivered: func() []pubLine { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) },
			reopened: func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				if len(connected) < 2 {
					return time.Time{}
				}
				return reopened
			},
		}
	})

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(connected, f.urls[:2]) {
		t.Errorf("connected to %v, want n1 then n2", connected)
	}
	if len(subscribed) != 2 {
		t.Fatalf("subscribed %+v, want twice", subscribed)
	}
	s := subscribed[1]
	if !s.Resubscribed || !s.Recovered || s.URL != f.urls[1] || s.Since == nil || s.Since.Epoch != f.epoch ||
		s.Since.Offset != failoverKillAt || s.Offset != failoverKillAt+uint64(len(f.recovered)) {
		t.Errorf("the subscribe on n2: %+v (since %+v); recovered offsets %v", s, s.Since, f.recovered)
	}
	if len(gaps) != 0 {
		t.Errorf("gaps %+v", gaps)
	}
	for _, err := range errs { // a recovering subscribe may meet a stream leader being elected
		if pe := (*protocol.Error)(nil); !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable {
			t.Errorf("OnError: %v", err)
		}
	}
}

// TestClientProcessMovesThroughTheCluster: `wsgate client -sub feed URL1 URL2 URL3` as a process.
func TestClientProcessMovesThroughTheCluster(t *testing.T) {
	var stdout, stderr lockedBuffer
	var stdin io.WriteCloser
	exited := make(chan struct{}) // closed when the process has exited, with its error in exit
	var exit error
	f := clusterFailover(t, func(urls []string) follower {
		cmd := exec.Command(wsgateBinary(t), append([]string{"client", "-sub", "feed"}, urls...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { exit = cmd.Wait(); close(exited) }() // owner: the test; ends with the process, killed at cleanup
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // by PID; nothing if it has exited
			<-exited
		})
		delivered := func() []pubLine {
			out := stdout.String()
			var pubs []pubLine
			for _, line := range strings.Split(out[:strings.LastIndexByte(out, '\n')+1], "\n") {
				if line == "" {
					continue
				}
				var p pubLine
				if err := json.Unmarshal([]byte(line), &p); err != nil {
					t.Fatalf("a line of stdout that is not a publication: %q", line)
				}
				pubs = append(pubs, p)
			}
			return pubs
		}
		// When it connected again is not known to the moment: stderr is polled.
		return follower{delivered, func() time.Time { return time.Time{} }}
	})

	stdin.Close() // the end of stdin: close with 1000, exit 0
	select {
	case <-exited:
		if exit != nil {
			t.Errorf("exit: %v\nstderr:\n%s", exit, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after the end of stdin; stderr:\n%s", stderr.String())
	}
	errs := stderr.String()
	last := failoverKillAt + len(f.recovered)
	for _, want := range []string{
		"connected: " + f.urls[0] + "\n",
		"connection to " + f.urls[0] + " ended: 1006",
		"connected: " + f.urls[1] + "\n",
		fmt.Sprintf("subscribed: feed at %s/%d, recovered from %s/%d\n", f.epoch, last, f.epoch, failoverKillAt),
		"closed: 1000",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "lost: feed") || strings.Contains(errs, f.urls[2]) {
		t.Errorf("a gap, or a move to n3:\n%s", errs)
	}
}
