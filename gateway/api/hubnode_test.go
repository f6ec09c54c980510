package api_test

import (
	"context"
	"encoding/json"
	"errors"
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

// hubNode is a small real api.Node over a bare hub, for the tests: its user registry is kept
// from the hub's OnConnect and OnDisconnect hooks, with the identity the test's Connect hook gave
// (the token is the user's name), as the gateway's own Node (package gateway) keeps its own,
// across nodes.
type hubNode struct {
	h     *hub.Hub
	start time.Time

	mu    sync.Mutex
	users map[string]map[*wsgate.Conn]struct{}
}

var _ api.Node = (*hubNode)(nil)

// hooks sets the hub options that identify connections and keep the registry.
func (n *hubNode) hooks(o *hub.Options) {
	n.start, n.users = time.Now(), map[string]map[*wsgate.Conn]struct{}{}
	o.Connect = func(_ context.Context, _ *wsgate.Conn, token string) (*hub.Identity, error) {
		if token == "" {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "token required")
		}
		info, _ := json.Marshal(map[string]string{"name": strings.ToUpper(token[:1]) + token[1:]})
		return &hub.Identity{User: token, Info: info}, nil
	}
	o.OnConnect = func(c *wsgate.Conn, id *hub.Identity) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.users[id.User] == nil {
			n.users[id.User] = map[*wsgate.Conn]struct{}{}
		}
		n.users[id.User][c] = struct{}{}
	}
	o.OnDisconnect = func(c *wsgate.Conn, id *hub.Identity) {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.users[id.User], c)
		if len(n.users[id.User]) == 0 {
			delete(n.users, id.User)
		}
	}
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

func hubError(err error) error {
	if errors.Is(err, hub.ErrDraining) {
		return protocol.Errorf(protocol.CodeUnavailable, "server shutting down")
	}
	return err
}

func (n *hubNode) Publish(ctx context.Context, ch string, data json.RawMessage, key string) (broker.Position, error) {
	if key != "" {
		pos, err := n.h.PublishOnce(ctx, ch, data, key)
		return pos, hubError(err)
	}
	pos, err := n.h.Publish(ctx, ch, data)
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
		switch {
		case errors.As(err, &pe) && pe.Code == protocol.CodeAlreadySubscribed:
		case errors.Is(err, hub.ErrNotConnected):
			continue // gone meanwhile
		case err != nil:
			return count, err
		}
		count++
	}
	return count, nil
}

func (n *hubNode) Unsubscribe(ctx context.Context, user, ch string) (int, error) {
	count := 0
	for _, c := range n.conns(user) {
		err := n.h.Unsubscribe(c, ch)
		var pe *protocol.Error
		switch {
		case errors.As(err, &pe) && pe.Code == protocol.CodeNotSubscribed, errors.Is(err, hub.ErrNotConnected):
			continue // not subscribed, or gone meanwhile
		case err != nil:
			return count, err
		}
		count++
	}
	return count, nil
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
	clients, users := n.h.PresenceStats(ch)
	return api.PresenceStats{Clients: clients, Users: users}, nil
}

func (n *hubNode) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return n.h.History(ctx, ch, since, limit)
}

func (n *hubNode) RemoveHistory(ctx context.Context, ch string) error {
	return n.h.RemoveHistory(ctx, ch) // errors.ErrUnsupported on a broker without the capability
}

func (n *hubNode) Channels(ctx context.Context, prefix, after string, limit int) (api.ChannelsResult, error) {
	all := n.h.Channels() // by name
	i := sort.Search(len(all), func(i int) bool { return all[i].Name >= prefix })
	if after != "" {
		i = max(i, sort.Search(len(all), func(i int) bool { return all[i].Name > after }))
	}
	res := api.ChannelsResult{}
	for ; i < len(all) && strings.HasPrefix(all[i].Name, prefix); i++ {
		if len(res.Channels) == limit {
			res.Next = res.Channels[limit-1].Name
			break
		}
		res.Channels = append(res.Channels, api.ChannelInfo{Name: all[i].Name, Subscribers: all[i].Subscribers})
	}
	return res, nil
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
