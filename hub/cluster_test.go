package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// switchboard joins in-process brokers into a cluster for presence: each node has its own
// memory broker (publications do not cross; broker/nats tests cover that) and a Cluster bus
// delivering asynchronously, in order per sender, as NATS does. It can cut a node off and drop
// messages, which a real network does on its own schedule.
type switchboard struct {
	mu    sync.Mutex
	nodes map[string]*node
	cut   map[string]bool // nodes whose messages are lost both ways
	drop  int             // the next drop messages are lost
	snaps int             // snapshots sent (their first part)
}

type node struct {
	*memory.Broker
	sb   *switchboard
	name string

	mu        sync.Mutex
	listeners map[string]*listener
}

type listener struct {
	fn    func(string, []byte)
	queue chan [2]string
	done  chan struct{}
}

func newSwitchboard() *switchboard {
	return &switchboard{nodes: map[string]*node{}, cut: map[string]bool{}}
}

func (sb *switchboard) node(name string) *node {
	n := &node{Broker: memory.New(nil), sb: sb, name: name, listeners: map[string]*listener{}}
	sb.mu.Lock()
	sb.nodes[name] = n
	sb.mu.Unlock()
	return n
}

func (sb *switchboard) setCut(name string, cut bool) {
	sb.mu.Lock()
	sb.cut[name] = cut
	sb.mu.Unlock()
}

func (n *node) Node() string { return n.name }

func (n *node) Send(topic string, msg []byte) error {
	sb := n.sb
	sb.mu.Lock()
	if sb.cut[n.name] {
		sb.mu.Unlock()
		return nil // sent, and lost on the way
	}
	var to []*node
	for name, o := range sb.nodes {
		if name != n.name && !sb.cut[name] {
			to = append(to, o)
		}
	}
	lost := sb.drop > 0
	if lost {
		sb.drop--
	}
	if strings.HasPrefix(string(msg), `{"k":"r"`) {
		sb.snaps++
	}
	sb.mu.Unlock()
	if lost {
		return nil
	}
	for _, o := range to {
		o.mu.Lock()
		if l := o.listeners[topic]; l != nil {
			select {
			case l.queue <- [2]string{n.name, string(msg)}:
			default:
				panic("switchboard: listener queue full")
			}
		}
		o.mu.Unlock()
	}
	return nil
}

func (n *node) Listen(topic string, fn func(string, []byte)) (func(), error) {
	l := &listener{fn: fn, queue: make(chan [2]string, 10000), done: make(chan struct{})}
	n.mu.Lock()
	n.listeners[topic] = l
	n.mu.Unlock()
	stop := make(chan struct{})
	go func() { // owner: the listener; ends on cancel
		defer close(l.done)
		for {
			select {
			case m := <-l.queue:
				fn(m[0], []byte(m[1]))
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.listeners, topic)
			n.mu.Unlock()
			close(stop)
			<-l.done
		})
	}, nil
}

var _ broker.Cluster = (*node)(nil)

func presenceOf(t *testing.T, c *client, ch string, pushes *[]map[string]json.RawMessage) []protocol.ClientInfo {
	t.Helper()
	r := c.call("presence", `,"channel":"`+ch+`"`, pushes)
	var pr protocol.PresenceResult
	if err := json.Unmarshal(r["result"], &pr); err != nil || pr.Total != len(pr.Clients) {
		t.Fatalf("presence: %v", strMap(r))
	}
	return pr.Clients
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPresenceAcrossNodes: three nodes; presence lists every node's subscribers, ordered by node
// and connection, pages across nodes, and pushes the joins and leaves of other nodes' clients.
func TestPresenceAcrossNodes(t *testing.T) {
	sb := newSwitchboard()
	var nodes []*env
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startOn(t, sb.node(name), &hub.Options{PresenceTTL: time.Second}, nil))
	}
	watcher := nodes[0].dial(t)
	watcher.call("subscribe", `,"channel":"room","presence":true`, nil)
	var members []*client
	for i := range 3 {
		for range 2 {
			c := nodes[i].dial(t)
			c.call("subscribe", `,"channel":"room"`, nil)
			members = append(members, c)
		}
	}
	for _, e := range nodes {
		waitPresence(t, e.hub, "room", 7)
	}
	sb.mu.Lock()
	snaps := sb.snaps
	sb.mu.Unlock()
	if snaps > 3 { // n1 when n2 starts; n1 and n2 when n3 does
		t.Errorf("%d presence snapshots sent for three nodes starting, want at most 3", snaps)
	}
	all := e2s(nodes[1].hub.Presence("room"))
	if !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(a, b) }) || !strings.HasPrefix(all[0], "n1:") || !strings.HasPrefix(all[6], "n3:") {
		t.Fatalf("presence on n2 not ordered by node and connection: %v", all)
	}
	var pushes []map[string]json.RawMessage // the watcher's, while it makes calls
	if got := e2s(presenceOf(t, watcher, "room", &pushes)); !slices.Equal(got, all) {
		t.Fatalf("presence on n1 %v, on n2 %v", got, all)
	}
	// Pages of 2 across the node boundaries.
	var paged []string
	after := ""
	for range 10 {
		r := watcher.call("presence", fmt.Sprintf(`,"channel":"room","limit":2,"after":%q`, after), &pushes)
		var pr protocol.PresenceResult
		json.Unmarshal(r["result"], &pr)
		if pr.Total != 7 {
			t.Fatalf("page total %d", pr.Total)
		}
		paged = append(paged, e2s(pr.Clients)...)
		if after = pr.Next; after == "" {
			break
		}
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged %v, whole %v", paged, all)
	}
	// The watcher saw every join, its own included, and sees a remote leave.
	seen := map[string]bool{}
	for len(seen) < 7 {
		var j map[string]json.RawMessage
		if len(pushes) > 0 {
			j, pushes = pushes[0], pushes[1:]
			if str(j["push"]) != "presence" {
				continue
			}
		} else {
			j = watcher.push("presence")
		}
		var joined []protocol.ClientInfo
		json.Unmarshal(j["join"], &joined)
		for _, c := range joined {
			seen[c.Conn] = true
		}
	}
	members[5].ws.Close()
	l := watcher.push("presence")
	var left []protocol.ClientInfo
	json.Unmarshal(l["leave"], &left)
	if len(left) != 1 || left[0].Conn != all[6] {
		t.Fatalf("leave %v, want %s", strMap(l), all[6])
	}
	for _, e := range nodes {
		waitPresence(t, e.hub, "room", 6)
	}
}

func e2s(infos []protocol.ClientInfo) []string {
	out := make([]string, len(infos))
	for i, c := range infos {
		out[i] = c.Conn
	}
	return out
}

// TestPresenceForgetsADeadNode: a node that falls silent (killed, or cut off) leaves every
// presence list of the others within PresenceTTL, with leave pushes; once heard again it is
// asked for its presence and comes back.
func TestPresenceForgetsADeadNode(t *testing.T) {
	sb := newSwitchboard()
	ttl := 500 * time.Millisecond
	a := startOn(t, sb.node("a"), &hub.Options{PresenceTTL: ttl}, nil)
	b := startOn(t, sb.node("b"), &hub.Options{PresenceTTL: ttl}, nil)
	watcher := a.dial(t)
	watcher.call("subscribe", `,"channel":"room","presence":true`, nil)
	for range 3 {
		b.dial(t).call("subscribe", `,"channel":"room"`, nil)
	}
	waitPresence(t, a.hub, "room", 4)
	remote := e2s(a.hub.Presence("room"))[1:]

	sb.setCut("b", true)
	cutAt := time.Now()
	var left []string
	for len(left) < 3 {
		m := watcher.push("presence")
		var l []protocol.ClientInfo
		json.Unmarshal(m["leave"], &l)
		left = append(left, e2s(l)...)
	}
	if took := time.Since(cutAt); took > ttl+ttl/5+500*time.Millisecond {
		t.Fatalf("dead node's clients left after %v, PresenceTTL %v", took, ttl)
	}
	slices.Sort(left)
	if !slices.Equal(left, remote) {
		t.Fatalf("left %v, want %v", left, remote)
	}
	if n := len(a.hub.Presence("room")); n != 1 {
		t.Fatalf("presence after the node died: %d", n)
	}

	sb.setCut("b", false) // the partition heals: b's next heartbeat brings its presence back
	waitFor(t, "b back in a's presence", 5*time.Second, func() bool { return len(a.hub.Presence("room")) == 4 })
}

// TestPresenceHealsLostMessages: deltas lost on the way are noticed from the next heartbeat's
// number, and a snapshot puts the replica right.
func TestPresenceHealsLostMessages(t *testing.T) {
	sb := newSwitchboard()
	ttl := time.Second
	a := startOn(t, sb.node("a"), &hub.Options{PresenceTTL: ttl}, nil)
	b := startOn(t, sb.node("b"), &hub.Options{PresenceTTL: ttl}, nil)
	b.dial(t).call("subscribe", `,"channel":"x"`, nil)
	waitPresence(t, a.hub, "x", 1)
	sb.mu.Lock()
	sb.drop = 1 // b's next delta
	sb.mu.Unlock()
	c := b.dial(t)
	c.call("subscribe", `,"channel":"x"`, nil)
	waitPresence(t, b.hub, "x", 2)
	waitFor(t, "the lost join repaired", 3*ttl, func() bool { return len(a.hub.Presence("x")) == 2 })
}

// TestPresenceByeIsImmediate: a node that closes says so, and its clients leave at once, not
// after PresenceTTL.
func TestPresenceByeIsImmediate(t *testing.T) {
	sb := newSwitchboard()
	a := startOn(t, sb.node("a"), &hub.Options{PresenceTTL: time.Hour}, nil)
	bb := sb.node("b")
	b := startOn(t, bb, &hub.Options{PresenceTTL: time.Hour}, nil)
	b.dial(t).call("subscribe", `,"channel":"x"`, nil)
	waitPresence(t, a.hub, "x", 1)
	if err := b.hub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, a.hub, "x", 0)
}

// TestIdentityAcrossNodes: a connection's identity (user and info) shows in the other nodes'
// presence pages, join pushes, snapshots (a node starting late), Channels and PresenceStats.
func TestIdentityAcrossNodes(t *testing.T) {
	sb := newSwitchboard()
	opts := func() *hub.Options {
		return &hub.Options{Connect: tokens, PresenceTTL: time.Second, PresenceInterval: 20 * time.Millisecond}
	}
	a := startOn(t, sb.node("a"), opts(), nil)
	b := startOn(t, sb.node("b"), opts(), nil)
	watcher := a.dial(t)
	watcher.call("connect", `,"token":"user:watch"`, nil)
	watcher.call("subscribe", `,"channel":"room","presence":true`, nil)
	watcher.push("presence") // its own join
	c := b.dial(t)
	c.call("connect", `,"token":"user:grace"`, nil)
	c.call("subscribe", `,"channel":"room"`, nil)
	j := watcher.push("presence")
	var joined []protocol.ClientInfo
	if json.Unmarshal(j["join"], &joined); len(joined) != 1 || joined[0].User != "grace" || string(joined[0].Info) != `{"name":"GRACE"}` {
		t.Fatalf("remote join push %v", strMap(j))
	}
	pr := presenceOf(t, watcher, "room", nil)
	if len(pr) != 2 || pr[1].User != "grace" || string(pr[1].Info) != `{"name":"GRACE"}` {
		t.Fatalf("presence on a %+v", pr)
	}
	late := startOn(t, sb.node("c"), opts(), nil) // learns b's presence from a snapshot
	waitFor(t, "the late node's replica", 3*time.Second, func() bool { return len(late.hub.Presence("room")) == 2 })
	got := late.hub.Presence("room")
	if got[0].User != "watch" || string(got[1].Info) != `{"name":"GRACE"}` {
		t.Fatalf("presence on the late node %+v", got)
	}
	if clients, users := late.hub.PresenceStats("room"); clients != 2 || users != 2 {
		t.Fatalf("stats on the late node: %d clients, %d users", clients, users)
	}
	// Each node lists the whole cluster's channels: room (2), and the users' own channels.
	if got := fmt.Sprint(late.hub.Channels()); got != "[{#grace 1} {#watch 1} {room 2}]" {
		t.Fatalf("Channels on the late node %s", got)
	}
	if late.hub.Cluster() == nil || late.hub.Cluster().Node() != "c" {
		t.Fatal("Cluster on a node of a cluster")
	}
}
