package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/protocol"
)

// syncBus is a broker.Cluster delivering synchronously, so that the test drives the rounds.
type syncBus struct {
	*memory.Broker
	name string
	all  *busSet
}

type busSet struct {
	mu  sync.Mutex
	fns map[string]func(string, []byte)
}

func (b *syncBus) Node() string { return b.name }
func (b *syncBus) Send(_ string, msg []byte) error {
	b.all.mu.Lock()
	var fns []func(string, []byte)
	for n, fn := range b.all.fns {
		if n != b.name {
			fns = append(fns, fn)
		}
	}
	b.all.mu.Unlock()
	for _, fn := range fns {
		fn(b.name, append([]byte(nil), msg...))
	}
	return nil
}
func (b *syncBus) Listen(_ string, fn func(string, []byte)) (func(), error) {
	b.all.mu.Lock()
	b.all.fns[b.name] = fn
	b.all.mu.Unlock()
	return func() {
		b.all.mu.Lock()
		delete(b.all.fns, b.name)
		b.all.mu.Unlock()
	}, nil
}

func syncHub(t *testing.T, set *busSet, name string) (*Hub, string) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// No rounds nor heartbeats from the loop: the test makes them.
	h, err := New(context.Background(), &syncBus{memory.New(nil), name, set}, &Options{PresenceInterval: time.Hour, PresenceTTL: 5 * time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		_ = h.Close(context.Background())
	})
	return h, "ws" + strings.TrimPrefix(hs.URL, "http")
}

func syncCall(t *testing.T, ws *websocket.Conn, id int, op, channel string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"id":%d,"op":%q,"channel":%q}`, id, op, channel))); err != nil {
		t.Fatal(err)
	}
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(p, &m)
		if string(m["id"]) == fmt.Sprint(id) {
			if m["error"] != nil {
				t.Fatalf("%s: %s", op, p)
			}
			return
		}
	}
}

// syncSubscribe subscribes and waits until the hub has noted the join for the next round: the
// reply is queued just before it, and a round taken in between would miss it.
func syncSubscribe(t *testing.T, h *Hub, ws *websocket.Conn, id int, channel string) {
	t.Helper()
	syncCall(t, ws, id, "subscribe", channel)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ch := h.channel(channel); ch != nil {
			ch.mu.Lock()
			noted := ch.dirty
			ch.mu.Unlock()
			if noted {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the join to %s was never noted", channel)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSnapshotWithinARoundLeavesNoGhost: a snapshot is taken after the round's deltas were
// sent, so it can hold a join made since. When that connection leaves again before the next
// round, the next delta must still say so (its final state), or a node that applied the
// snapshot keeps a ghost for ever: the heartbeat's number matches, so it never asks again.
// (Found by review: the round cancelled such a join and leave.) The reverse, a leave and a join
// again within the round, must not lose a live member.
func TestSnapshotWithinARoundLeavesNoGhost(t *testing.T) {
	set := &busSet{fns: map[string]func(string, []byte){}}
	b, burl := syncHub(t, set, "b")
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}).Dial(burl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	syncSubscribe(t, b, ws, 1, "x")
	b.flushPresence() // delta 1: joined
	syncCall(t, ws, 2, "unsubscribe", "x")
	b.flushPresence() // delta 2: left

	// A node starts: its request to every node marks b's snapshot wanted. In b's loop the
	// snapshot follows the round's deltas; a join lands between the two.
	d, _ := syncHub(t, set, "d")
	if !b.cl.wanted.Swap(false) {
		t.Fatal("d's request did not reach b")
	}
	b.flushPresence()
	syncSubscribe(t, b, ws, 3, "x") // between flushPresence and sendSnapshot
	b.sendSnapshot()
	syncCall(t, ws, 4, "unsubscribe", "x") // before the next round: cancels the join
	b.flushPresence()
	b.heartbeat(time.Now())

	if n := len(b.Presence("x")); n != 0 {
		t.Fatalf("b's own presence %d", n)
	}
	if got := d.Presence("x"); len(got) != 0 {
		t.Fatalf("d's presence of x holds %v, which left; b's is empty", got)
	}

	// The reverse: in presence, a snapshot taken after it left, then back within the round.
	syncSubscribe(t, b, ws, 5, "x")
	b.flushPresence()
	syncCall(t, ws, 6, "unsubscribe", "x")
	b.sendSnapshot()
	syncSubscribe(t, b, ws, 7, "x")
	b.flushPresence()
	if got := d.Presence("x"); len(got) != 1 || len(b.Presence("x")) != 1 {
		t.Fatalf("d's presence of x %v, b's %v: a live member lost", got, b.Presence("x"))
	}
}

// TestPackSplitsAChannel: a channel whose members do not fit one presence message is split
// across several, each within maxClusterPart, with nothing lost or repeated.
func TestPackSplitsAChannel(t *testing.T) {
	big := chanDelta{Name: "big", Leave: []uint64{7, 8}}
	for i := range 3000 {
		big.Join = append(big.Join, member{uint64(i), strings.Repeat("u", 200), nil})
	}
	// Members at the bounds, whose user and info escape to 6 bytes a byte: still within a part.
	worst := json.RawMessage(`"` + strings.Repeat("<", MaxInfoLen-2) + `"`)
	for i := range 100 {
		big.Join = append(big.Join, member{uint64(5000 + i), strings.Repeat("\x01", MaxUserLen), worst})
	}
	parts := pack([]chanDelta{{Name: "small", Join: []member{{1, "a", json.RawMessage(`{"name":"A"}`)}}}, big})
	if len(parts) < 3 {
		t.Fatalf("%d parts for %d KB of members", len(parts), 3000*232/1000)
	}
	joins, leaves := 0, 0
	for _, part := range parts {
		b, _ := json.Marshal(clusterMsg{Kind: "a", Seq: 1 << 40, Part: 1 << 20, Chans: part})
		if len(b) > maxClusterPart {
			t.Fatalf("a part of %d bytes, bound %d", len(b), maxClusterPart)
		}
		for _, d := range part {
			joins += len(d.Join)
			leaves += len(d.Leave)
		}
	}
	if joins != 3101 || leaves != 2 {
		t.Fatalf("%d joins and %d leaves in the parts, want 3101 and 2", joins, leaves)
	}
}

// TestUserNamesAreCut: a user name beyond MaxUserLen is cut on a character boundary.
func TestUserNamesAreCut(t *testing.T) {
	long := strings.Repeat("é", MaxUserLen) // 2 bytes each
	if got := cutUser(long); len(got) != MaxUserLen || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := cutUser("x" + long); len(got) != MaxUserLen-1 || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// TestTinyPresenceTTLIsRefused: a PresenceTTL under 5 PresenceIntervals would have nodes
// expire each other between heartbeats, and under 5 ns made the heartbeat ticker panic the
// hub's goroutine (found by review: -presence-ttl 1ns killed the process).
func TestTinyPresenceTTLIsRefused(t *testing.T) {
	set := &busSet{fns: map[string]func(string, []byte){}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, ttl := range []time.Duration{time.Nanosecond, 499 * time.Millisecond} {
		h, err := New(context.Background(), &syncBus{memory.New(nil), "n", set}, &Options{PresenceTTL: ttl, Logger: quiet})
		if err == nil {
			_ = h.Close(context.Background())
			t.Fatalf("PresenceTTL %v accepted with the default PresenceInterval", ttl)
		}
		if !strings.Contains(err.Error(), "PresenceTTL") {
			t.Fatalf("error %q does not name PresenceTTL", err)
		}
	}
}
