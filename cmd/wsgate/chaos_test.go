package main

// The chaos test of issue 10: three `wsgate serve -nats` processes on a three-server NATS cluster
// (all built from the module), hundreds of wsgate.v1 subscribers spread over them, a steady
// publisher, and during the run a wsgate node killed with SIGKILL and a NATS server restarted.
// Every subscriber must end with every publication exactly once, in offset order, and presence
// on every surviving node must list exactly the live subscribers.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wstest"
)

const (
	chaosChannel     = "chaos"
	chaosSubscribers = 300
	chaosRate        = 50 // publications a second
	chaosDuration    = 15 * time.Second
	chaosPresenceTTL = 2 * time.Second
)

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: 3 nats-servers, 3 wsgate nodes and 300 clients for about 40 s")
	}
	began := time.Now()
	at := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }

	// The NATS cluster: three servers, each routing to the other two.
	addrs := wstest.FreeAddrs(t, 9)
	ports, routes, monitors := make([]string, 3), make([]string, 3), make([]string, 3)
	for i := range 3 {
		ports[i] = addrs[i][strings.LastIndexByte(addrs[i], ':')+1:]
		routes[i] = "nats://" + addrs[3+i]
		monitors[i] = addrs[6+i]
	}
	var nats []*natsProcess
	var urls []string
	for i := range 3 {
		nats = append(nats, startNATSServer(t, ports[i], t.TempDir(), "-n", fmt.Sprintf("nats%d", i+1),
			"--cluster_name", "chaos", "--cluster", routes[i], "--routes", others(routes, i),
			"-m", monitors[i][strings.LastIndexByte(monitors[i], ':')+1:]))
		urls = append(urls, "nats://127.0.0.1:"+ports[i])
	}
	at("NATS cluster started")

	// The wsgate nodes, one after the other: the first creates the stream.
	nodes := make([]*process, 3)
	for i := range 3 {
		nodes[i] = launch(t, "-nats", strings.Join(urls, ","), "-replicas", "3", "-node", fmt.Sprintf("w%d", i+1),
			"-presence-ttl", chaosPresenceTTL.String())
		nodes[i].await(t, 60*time.Second)
	}
	addrsOf := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}
	at("wsgate nodes listen")

	// The subscribers, spread over the nodes; every tenth also asks for presence events.
	subs := make([]*chaosSub, chaosSubscribers)
	for i := range subs {
		s := &chaosSub{id: i, node: i % 3, presence: i%10 == 0, addrs: addrsOf}
		if err := s.connect(s.node, nil); err != nil {
			t.Fatalf("subscriber %d on node %d: %v", i, s.node+1, err)
		}
		subs[i] = s
	}
	t.Cleanup(func() {
		for _, s := range subs {
			if s != nil && s.c != nil {
				s.c.close()
			}
		}
	})
	at(fmt.Sprintf("%d subscribers subscribed", len(subs)))

	var top atomic.Uint64 // the last acknowledged offset, once the publisher is done
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.run(&top, stop) }) // owner: this test; ends at top or at stop
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	// The publisher, on node 1, and the faults, on node 3 and NATS server 2.
	pub := &chaosPublisher{addr: nodes[0].addr}
	published := make(chan error, 1)
	go func() { published <- pub.run(chaosRate, chaosDuration) }() // owner: this test
	time.Sleep(chaosDuration / 4)
	at("kill -9 wsgate node 3")
	nodes[2].kill()
	killed := time.Now()
	// Node 1 forgets node 3's connections within the presence TTL (a little more: it has to
	// notice the silence first).
	watcher := mustDial(t, nodes[0])
	for {
		counts, _, err := presenceOf(watcher)
		if err != nil {
			t.Fatal(err)
		}
		if counts["w3-"] == 0 {
			break
		}
		if time.Since(killed) > chaosPresenceTTL+5*time.Second {
			t.Fatalf("node 1 still lists %d connections of node 3 %v after its death", counts["w3-"], time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	at(fmt.Sprintf("node 1 forgot node 3's connections in %v", time.Since(killed).Round(10*time.Millisecond)))
	time.Sleep(chaosDuration/4 - time.Since(killed))
	// The stream's leader: its loss makes the others elect another, and publishing waits.
	leader := streamLeader(t, monitors[0])
	at(fmt.Sprintf("kill -9 NATS server %d, the stream's leader", leader+1))
	nats[leader].kill()
	time.Sleep(2 * time.Second)
	nats[leader] = nats[leader].restart(t)
	at(fmt.Sprintf("NATS server %d restarted", leader+1))
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	last := pub.acked[len(pub.acked)-1]
	at(fmt.Sprintf("publishers done: %d acknowledged of %d attempts, top offset %d", len(pub.acked), pub.attempts, last.offset))
	top.Store(last.offset)

	// Every subscriber reaches the top, or the test gives up on it.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }() // owner: this test; ends when the subscribers do
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("subscribers not done 30 s after the last publication")
	}
	at("subscribers done")
	checkChaosSubscribers(t, subs, pub.acked, last.offset)

	// Presence: the other nodes forget node 3's connections within the TTL, and list exactly the
	// live subscribers, on every surviving node.
	perNode := map[string]int{}
	for _, s := range subs {
		perNode[fmt.Sprintf("w%d-", s.node+1)]++
	}
	for _, n := range nodes[:2] {
		checkChaosPresence(t, n, perNode, len(subs))
	}
	at("presence checked")
	var reconnects, fills int
	for _, s := range subs {
		reconnects += s.reconnects
		fills += s.fills
	}
	t.Logf("%d reconnections, %d jumps filled from history", reconnects, fills)
}

// streamLeader is the index of the NATS server (named nats1 to nats3) that leads the wsgate
// stream, read from a server's monitoring endpoint.
func streamLeader(t *testing.T, monitor string) int {
	t.Helper()
	_, body := get(t, "http://"+monitor+"/jsz?streams=true")
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.Unmarshal([]byte(body), &jsz); err != nil {
		t.Fatalf("jsz: %v: %.200s", err, body)
	}
	for _, a := range jsz.Accounts {
		for _, st := range a.Streams {
			if st.Name == "WSGATE" && strings.HasPrefix(st.Cluster.Leader, "nats") {
				if i, err := strconv.Atoi(st.Cluster.Leader[4:]); err == nil && i >= 1 && i <= 3 {
					return i - 1
				}
			}
		}
	}
	t.Fatalf("no leader of stream WSGATE in %.500s", body)
	return 0
}

// checkChaosSubscribers checks that every subscriber holds offsets 1 to top, once each and in
// order, with the data of every acknowledged publication.
func checkChaosSubscribers(t *testing.T, subs []*chaosSub, acked []chaosAck, top uint64) {
	t.Helper()
	bad := 0
	for _, s := range subs {
		s.mu.Lock()
		err, got, data := s.err, s.got, s.data
		s.mu.Unlock()
		if err == nil && uint64(len(got)) != top {
			err = fmt.Errorf("holds %d publications, want %d", len(got), top)
		}
		for i := 0; err == nil && i < len(got); i++ {
			if got[i] != uint64(i+1) {
				err = fmt.Errorf("publication %d has offset %d", i+1, got[i])
			}
		}
		for _, a := range acked {
			if err == nil && data[a.offset-1] != a.data {
				err = fmt.Errorf("offset %d holds %s, the publisher's was %s", a.offset, data[a.offset-1], a.data)
			}
		}
		if err != nil {
			if bad++; bad <= 10 {
				t.Errorf("subscriber %d (node %d, %d reconnections): %v", s.id, s.node+1, s.reconnects, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d subscribers wrong", bad, len(subs))
	}
}

// checkChaosPresence waits for node's presence list of the channel to hold exactly the live
// subscribers: total of them, and per node (name prefix) the number connected there.
func checkChaosPresence(t *testing.T, node *process, perNode map[string]int, total int) {
	t.Helper()
	c := mustDial(t, node)
	var last string
	for deadline := time.Now().Add(chaosPresenceTTL + 10*time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		counts, n, err := presenceOf(c)
		if err != nil {
			t.Fatalf("presence on %s: %v", node.addr, err)
		}
		if n == total && len(counts) == len(perNode) {
			ok := true
			for p, want := range perNode {
				ok = ok && counts[p] == want
			}
			if ok {
				return
			}
		}
		last = fmt.Sprintf("total %d, by node %v", n, counts)
	}
	t.Errorf("presence on %s: %s; want %d: %v", node.addr, last, total, perNode)
}

// presenceOf reads every page of the channel's presence and counts the connections by node
// name prefix ("w1-": connections are named node:number in a cluster).
func presenceOf(c *v1Client) (map[string]int, int, error) {
	counts := map[string]int{}
	after, n := "", 0
	for {
		req := map[string]any{"op": "presence", "channel": chaosChannel, "limit": 1000}
		if after != "" {
			req["after"] = after
		}
		r, err := c.call(req, 10*time.Second)
		if err != nil {
			return nil, 0, err
		}
		for _, m := range r.Clients {
			prefix, _, _ := strings.Cut(m.Conn, "-")
			counts[prefix+"-"]++
			n++
		}
		if r.Next == "" {
			if n != r.Total {
				return nil, 0, fmt.Errorf("pages listed %d connections, total says %d", n, r.Total)
			}
			return counts, n, nil
		}
		after = r.Next
	}
}

// chaosAck is a publication the publisher had acknowledged: its offset and data.
type chaosAck struct {
	offset uint64
	data   string
}

// chaosPublisher publishes numbered data at a steady rate and keeps what was acknowledged.
// A connection's requests are served one after the other, each publication waiting for its
// JetStream acknowledgement, so the rate is shared by a few connections.
type chaosPublisher struct {
	addr string

	mu       sync.Mutex
	attempts int
	acked    []chaosAck // by offset, once run returns
}

const chaosPublishers = 3

// run publishes rate a second in all for d, then once more until acknowledged, so that the last
// acknowledged offset is the channel's top.
func (p *chaosPublisher) run(rate int, d time.Duration) error {
	end := time.Now().Add(d)
	errs := make([]error, chaosPublishers)
	var wg sync.WaitGroup
	for k := range chaosPublishers {
		wg.Go(func() { errs[k] = p.publish(time.Second*chaosPublishers/time.Duration(rate), end, false) }) // owner: run
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := p.publish(0, time.Now(), true); err != nil {
		return err
	}
	slices.SortFunc(p.acked, func(a, b chaosAck) int { return cmp.Compare(a.offset, b.offset) })
	for i := 1; i < len(p.acked); i++ {
		if p.acked[i].offset == p.acked[i-1].offset {
			return fmt.Errorf("offset %d acknowledged twice", p.acked[i].offset)
		}
	}
	return nil
}

// publish publishes every period until end on a connection of its own (each attempt's data is
// its number), reconnecting when the node drops it; final publishes until one is acknowledged.
func (p *chaosPublisher) publish(period time.Duration, end time.Time, final bool) error {
	c, err := dialV1(p.addr)
	if err != nil {
		return err
	}
	defer func() { c.close() }()
	giveUp := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		p.attempts++
		n := p.attempts
		p.mu.Unlock()
		start := time.Now()
		r, err := c.publish(chaosChannel, n)
		var ve *v1Error
		switch {
		case err == nil:
			p.mu.Lock()
			p.acked = append(p.acked, chaosAck{r.Offset, strconv.Itoa(n)})
			p.mu.Unlock()
			if final {
				return nil
			}
		case errors.As(err, &ve): // 201 while NATS elects a stream leader: go on
		default: // the connection: reconnect
			c.close()
			if c, err = dialV1(p.addr); err != nil {
				return fmt.Errorf("publisher reconnect: %w", err)
			}
		}
		if !final && time.Now().After(end) {
			return nil
		}
		if time.Now().After(giveUp) && final {
			return fmt.Errorf("no publication acknowledged within 30 s after the run (last: %v)", err)
		}
		time.Sleep(max(period-time.Since(start), 10*time.Millisecond))
	}
}

// chaosSub is one subscriber: it keeps every publication of the channel, in offset order, and
// moves to the next node when its own drops it, recovering from its last position.
type chaosSub struct {
	id       int
	node     int // index of the node it is connected to
	presence bool
	addrs    []string
	c        *v1Client

	epoch    string
	last     uint64 // offset of the last publication held
	dropUpTo uint64 // pushes at or before this were also fetched by a paged recovery

	mu         sync.Mutex // guards err, got and data for the checks while it runs
	err        error
	got        []uint64
	data       []string
	reconnects int
	fills      int // jumps filled from history
}

// connect subscribes on node i, recovering from since if not nil.
func (s *chaosSub) connect(i int, since *v1Position) (err error) {
	c, err := dialV1(s.addrs[i])
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	r, err := c.subscribe(chaosChannel, since, s.presence)
	if err != nil {
		return err
	}
	if since != nil && !r.Recovered {
		return fmt.Errorf("not recovered from %+v: %+v", *since, r)
	}
	s.c, s.node = c, i
	if since == nil {
		s.epoch, s.last = r.Epoch, r.Offset
		return nil
	}
	if err := s.adopt(r.Epoch); err != nil {
		return err
	}
	for _, p := range r.Publications {
		if err := s.hold(p.Offset, string(p.Data)); err != nil {
			return err
		}
	}
	if r.More {
		s.dropUpTo = r.Offset
		return s.fill(r.Offset)
	}
	return nil
}

// adopt checks a position's epoch: a subscriber that holds nothing yet takes it.
func (s *chaosSub) adopt(epoch string) error {
	if s.epoch == "" || s.last == 0 {
		s.epoch = epoch
	}
	if epoch != s.epoch {
		return fmt.Errorf("epoch %q, then %q", s.epoch, epoch)
	}
	return nil
}

// hold keeps the publication at offset, which must be the next one.
func (s *chaosSub) hold(offset uint64, data string) error {
	if offset != s.last+1 {
		return fmt.Errorf("publication at offset %d after %d", offset, s.last)
	}
	s.mu.Lock()
	s.got, s.data = append(s.got, offset), append(s.data, data)
	s.mu.Unlock()
	s.last = offset
	return nil
}

// fill fetches the publications after the last one held, up to offset, from history.
func (s *chaosSub) fill(offset uint64) error {
	for s.last < offset {
		h, err := s.c.history(chaosChannel, &v1Position{Epoch: s.epoch, Offset: s.last}, int(min(1000, offset-s.last)))
		if err != nil {
			return fmt.Errorf("history after %d: %w", s.last, err)
		}
		if !h.Complete || len(h.Publications) == 0 {
			return fmt.Errorf("history after %d, up to %d: %+v", s.last, offset, h)
		}
		for _, p := range h.Publications {
			if p.Offset > s.last && p.Offset <= offset {
				if err := s.hold(p.Offset, string(p.Data)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// push handles a pub or gap push.
func (s *chaosSub) push(p v1Push) error {
	if err := s.adopt(p.Epoch); err != nil {
		return err
	}
	if p.Push == "gap" {
		s.fills++
		return s.fill(p.Offset)
	}
	if p.Offset <= s.last {
		if p.Offset <= s.dropUpTo {
			return nil
		}
		return fmt.Errorf("publication at offset %d again (held up to %d)", p.Offset, s.last)
	}
	if p.Offset > s.last+1 {
		s.fills++
		if err := s.fill(p.Offset - 1); err != nil {
			return err
		}
	}
	return s.hold(p.Offset, string(p.Data))
}

// run handles pushes until the subscriber holds top (once set), or stop; a lost connection is
// resumed on the next node that takes it.
func (s *chaosSub) run(top *atomic.Uint64, stop <-chan struct{}) {
	fail := func(err error) {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
	for {
		if t := top.Load(); t > 0 && s.last >= t {
			return
		}
		select {
		case p := <-s.c.pubs:
			if err := s.push(p); err != nil {
				fail(err)
				return
			}
		case <-s.c.done:
			if len(s.c.pubs) > 0 {
				continue // what arrived before the connection was lost comes first
			}
			if err := s.resume(stop); err != nil {
				fail(err)
				return
			}
		case <-time.After(100 * time.Millisecond):
		case <-stop:
			return
		}
	}
}

// resume subscribes again on the next node that takes it, from the last position held.
func (s *chaosSub) resume(stop <-chan struct{}) error {
	s.c.close()
	s.reconnects++
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		for k := 1; k <= len(s.addrs); k++ {
			i := (s.node + k) % len(s.addrs)
			if err = s.connect(i, &v1Position{Epoch: s.epoch, Offset: s.last}); err == nil {
				return nil
			}
		}
		select {
		case <-stop:
			return fmt.Errorf("stopped while reconnecting: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no node took the subscriber back within 20 s: %w", err)
}
