package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// hubNode is a small real api.Node over a bare hub, for the tests: its user registry is the
// connections' Auth (the user the test's Admit took from the query), as the gateway's is the
// identity of each connection. The gateway's own Node (package gateway) does the same across
// nodes.
type hubNode struct {
	h     *hub.Hub
	b     broker.Broker
	start time.Time

	mu    sync.Mutex
	users map[string]map[*wsgate.Conn]struct{}
}

var _ api.Node = (*hubNode)(nil)

func newHubNode(h *hub.Hub, b broker.Broker) *hubNode {
	return &hubNode{h: h, b: b, start: time.Now(), users: map[string]map[*wsgate.Conn]struct{}{}}
}

// handler wraps the hub's handler to keep the registry.
func (n *hubNode) handler(next wsgate.Handler) wsgate.Handler { return &registry{n: n, next: next} }

type registry struct {
	n    *hubNode
	next wsgate.Handler
}

func userOf(c *wsgate.Conn) string { s, _ := c.Auth().(string); return s }

func (r *registry) OnOpen(c *wsgate.Conn) {
	if u := userOf(c); u != "" {
		r.n.mu.Lock()
		if r.n.users[u] == nil {
			r.n.users[u] = map[*wsgate.Conn]struct{}{}
		}
		r.n.users[u][c] = struct{}{}
		r.n.mu.Unlock()
	}
	r.next.OnOpen(c)
}

func (r *registry) OnMessage(c *wsgate.Conn, m wsgate.Message) { r.next.OnMessage(c, m) }

func (r *registry) OnClose(c *wsgate.Conn, err error) {
	if u := userOf(c); u != "" {
		r.n.mu.Lock()
		delete(r.n.users[u], c)
		if len(r.n.users[u]) == 0 {
			delete(r.n.users, u)
		}
		r.n.mu.Unlock()
	}
	r.next.OnClose(c, err)
}

func (n *hubNode) conns(user string) []*wsgate.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*wsgate.Conn
	for c := range n.users[user] {
		out = append(out, c)
	}
	return out
}

func notAvailable(what string) error {
	return protocol.Errorf(protocol.CodeNotAvailable, "%s: not offered by this hub yet", what)
}

func hubError(err error) error {
	if errors.Is(err, hub.ErrDraining) {
		return protocol.Errorf(protocol.CodeUnavailable, "server shutting down")
	}
	return err
}

func (n *hubNode) Publish(ctx context.Context, ch string, data json.RawMessage, key string) (broker.Position, error) {
	pos, err := n.h.Publish(ctx, ch, data) // TODO(gate-hub): PublishOnce with key
	return pos, hubError(err)
}

func (n *hubNode) Broadcast(ctx context.Context, chs []string, data json.RawMessage, key string) ([]api.ChannelResult, error) {
	out := make([]api.ChannelResult, len(chs))
	for i, ch := range chs {
		out[i].Channel = ch
		pos, err := n.Publish(ctx, ch, data, key)
		var pe *protocol.Error
		switch {
		case err == nil:
			out[i].Epoch, out[i].Offset = pos.Epoch, pos.Offset
		case errors.As(err, &pe):
			out[i].Error = pe
		default:
			return nil, err
		}
	}
	return out, nil
}

func (n *hubNode) Subscribe(ctx context.Context, user, ch string) (int, error) {
	count := 0
	for _, c := range n.conns(user) {
		err := n.h.Subscribe(ctx, c, ch)
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeAlreadySubscribed {
			err = nil
		}
		if err != nil {
			return count, err
		}
		count++
	}
	return count, nil
}

func (n *hubNode) Unsubscribe(ctx context.Context, user, ch string) (int, error) {
	return 0, notAvailable("unsubscribe") // TODO(gate-hub): Hub.Unsubscribe
}

func (n *hubNode) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	cs := n.conns(user)
	for _, c := range cs {
		_ = c.Close(wsgate.CloseCode(code), reason)
	}
	return len(cs), nil
}

func (n *hubNode) Presence(ctx context.Context, ch, after string, limit int) (protocol.PresenceResult, error) {
	all := n.h.Presence(ch)
	sort.Slice(all, func(i, j int) bool { return all[i].Conn < all[j].Conn })
	res := protocol.PresenceResult{Total: len(all)}
	i := 0
	if after != "" {
		i = sort.Search(len(all), func(i int) bool { return all[i].Conn > after })
	}
	res.Clients = all[i:min(len(all), i+limit)]
	if i+limit < len(all) {
		res.Next = res.Clients[len(res.Clients)-1].Conn
	}
	return res, nil
}

func (n *hubNode) PresenceStats(ctx context.Context, ch string) (api.PresenceStats, error) {
	all := n.h.Presence(ch) // TODO(gate-hub): Hub.PresenceStats
	users := map[string]struct{}{}
	for _, c := range all {
		if c.User != "" {
			users[c.User] = struct{}{}
		}
	}
	return api.PresenceStats{Clients: len(all), Users: len(users)}, nil
}

func (n *hubNode) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return n.h.History(ctx, ch, since, limit)
}

func (n *hubNode) RemoveHistory(ctx context.Context, ch string) error {
	if r, ok := n.b.(broker.HistoryRemover); ok { // TODO(gate-hub): Hub.RemoveHistory
		return r.RemoveHistory(ctx, ch)
	}
	return notAvailable("history removal")
}

func (n *hubNode) Channels(ctx context.Context, prefix, after string, limit int) (api.ChannelsResult, error) {
	return api.ChannelsResult{}, notAvailable("channels") // TODO(gate-hub): Hub.Channels
}

func (n *hubNode) Info(ctx context.Context) (api.NodeInfo, error) {
	n.mu.Lock()
	conns := 0
	for _, cs := range n.users {
		conns += len(cs)
	}
	n.mu.Unlock()
	return api.NodeInfo{Name: "test", Version: "test", UptimeSeconds: int64(time.Since(n.start) / time.Second), Connections: conns}, nil
}

// pageNames pages sorted names after after; shared by Channels once the hub lists them.
func pageNames(names []string, prefix, after string, limit int) ([]string, string) {
	names = slices.DeleteFunc(names, func(s string) bool { return !strings.HasPrefix(s, prefix) })
	slices.Sort(names)
	i, _ := slices.BinarySearch(names, after)
	if after != "" && i < len(names) && names[i] == after {
		i++
	}
	page := names[i:min(len(names), i+limit)]
	next := ""
	if i+limit < len(names) {
		next = page[len(page)-1]
	}
	return page, next
}
