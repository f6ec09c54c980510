package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/hub"
)

// The backend API's user operations (subscribe, unsubscribe, disconnect a user) reach every
// node: each node's gateway keeps its own users' connections, so the node the API call came to
// does its part and asks the others on the cluster bus (hub.Cluster), topic clusterTopic. The
// others answer with how many connections they reached; the call waits for the nodes it knows
// of (those heard within nodeTTL), at most clusterWait. The bus is best effort: a node that
// missed the request is not counted, and its user keeps its connections there.

const (
	clusterTopic = "gateway.users"
	// heartbeatEvery is how often a node says it is there; a node silent for nodeTTL is
	// forgotten.
	heartbeatEvery = time.Second
	nodeTTL        = 3 * heartbeatEvery
	// clusterWait bounds the wait for the other nodes' answers (and ctx, when sooner).
	clusterWait = 2 * time.Second
	// clusterQueue bounds the requests of other nodes waiting to be carried out here; beyond,
	// one is answered with an error at once.
	clusterQueue = 256
)

// clusterMsg is one message on the gateway's topic.
type clusterMsg struct {
	Kind    string `json:"k"`            // "hb" heartbeat, "op" a request, "re" its answer
	ID      uint64 `json:"id,omitempty"` // op and re: the request's number at its node
	To      string `json:"to,omitempty"` // re: the node that asked
	Op      string `json:"op,omitempty"` // subscribe, unsubscribe or disconnect
	User    string `json:"user,omitempty"`
	Channel string `json:"channel,omitempty"`
	Code    int    `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	N       int    `json:"n,omitempty"`   // re: connections reached
	Err     string `json:"err,omitempty"` // re: why it failed there
}

// clusterLink carries the user operations to the other nodes. Zero on one node.
type clusterLink struct {
	bus    broker.Cluster
	g      *Gateway
	cancel func() // stops listening
	stop   chan struct{}
	done   chan struct{}
	ops    chan clusterMsg // other nodes' requests, for the worker
	nextID atomic.Uint64

	mu      sync.Mutex
	nodes   map[string]time.Time         // other nodes, last heard
	waiting map[uint64]chan<- clusterMsg // answers expected, by request
}

func (l *clusterLink) start(g *Gateway, h *hub.Hub) error {
	bus := h.Cluster()
	if bus == nil {
		return nil
	}
	l.bus, l.g = bus, g
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	l.ops = make(chan clusterMsg, clusterQueue)
	l.nodes, l.waiting = map[string]time.Time{}, map[uint64]chan<- clusterMsg{}
	cancel, err := bus.Listen(clusterTopic, l.receive)
	if err != nil {
		return errorf("listening to the cluster: %w", err)
	}
	l.cancel = cancel
	go l.run() // owner: the clusterLink; stopped by close
	l.send(clusterMsg{Kind: "hb"})
	return nil
}

func (l *clusterLink) close() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	close(l.stop)
	<-l.done
	l.cancel = nil
}

// run sends the heartbeats and carries out the other nodes' requests, one at a time.
func (l *clusterLink) run() {
	defer close(l.done)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.send(clusterMsg{Kind: "hb"})
		case m := <-l.ops:
			ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
			n, err := l.g.localUserOp(ctx, m.Op, m.User, m.Channel, m.Code, m.Reason)
			cancel()
			re := clusterMsg{Kind: "re", ID: m.ID, To: m.To, N: n}
			if err != nil {
				re.Err = err.Error()
			}
			l.send(re)
		}
	}
}

func (l *clusterLink) send(m clusterMsg) {
	b, _ := json.Marshal(m)
	if err := l.bus.Send(clusterTopic, b); err != nil {
		l.g.log.Debug("gateway: cluster send", "err", err)
	}
}

// receive is the bus's callback: it must not block.
func (l *clusterLink) receive(from string, raw []byte) {
	var m clusterMsg
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	l.mu.Lock()
	l.nodes[from] = time.Now()
	var ch chan<- clusterMsg
	if m.Kind == "re" && m.To == l.bus.Node() {
		ch = l.waiting[m.ID]
	}
	l.mu.Unlock()
	switch m.Kind {
	case "re":
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	case "op":
		m.To = from
		select {
		case l.ops <- m:
		default:
			l.send(clusterMsg{Kind: "re", ID: m.ID, To: from, Err: "gateway: node busy"})
		}
	}
}

// peers returns the other nodes heard within nodeTTL.
func (l *clusterLink) peers() []string {
	if l.bus == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, t := range l.nodes {
		if now.Sub(t) > nodeTTL {
			delete(l.nodes, n)
		}
	}
	return slices.Sorted(maps.Keys(l.nodes))
}

// ask sends a request to the other nodes and adds up their answers: those of the nodes known
// now that answer within clusterWait (or ctx). An error from a node is returned, with the
// count of the others.
func (l *clusterLink) ask(ctx context.Context, op, user, channel string, code int, reason string) (int, error) {
	if l.bus == nil {
		return 0, nil
	}
	want := len(l.peers())
	if want == 0 {
		return 0, nil
	}
	id := l.nextID.Add(1)
	answers := make(chan clusterMsg, want)
	l.mu.Lock()
	l.waiting[id] = answers
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiting, id)
		l.mu.Unlock()
	}()
	l.send(clusterMsg{Kind: "op", ID: id, Op: op, User: user, Channel: channel, Code: code, Reason: reason})
	ctx, cancel := context.WithTimeout(ctx, clusterWait)
	defer cancel()
	n := 0
	var errs []error
	for range want {
		select {
		case m := <-answers:
			n += m.N
			if m.Err != "" {
				errs = append(errs, errors.New(m.Err))
			}
		case <-ctx.Done():
			return n, errors.Join(errs...)
		}
	}
	return n, errors.Join(errs...)
}
