package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"
	"sort"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Node returns the gateway's api.Node: the backend API's calls on the bound hub (Bind first),
// with the user operations (subscribe, unsubscribe, disconnect) reaching the user's connections
// on every node of a cluster.
func (g *Gateway) Node() api.Node { return (*node)(g) }

type node Gateway

var _ api.Node = (*node)(nil)

func (n *node) g() *Gateway { return (*Gateway)(n) }

// hubError maps the hub's shutdown to the protocol's "unavailable".
func hubError(err error) error {
	if errors.Is(err, hub.ErrDraining) {
		return protocol.Errorf(protocol.CodeUnavailable, "server shutting down")
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return protocol.Errorf(protocol.CodeNotAvailable, "not offered by this server's broker")
	}
	return err
}

func (n *node) Publish(ctx context.Context, ch string, data json.RawMessage, key string) (broker.Position, error) {
	var pos broker.Position
	var err error
	if key != "" {
		pos, err = n.hub.PublishOnce(ctx, ch, data, key)
	} else {
		pos, err = n.hub.Publish(ctx, ch, data)
	}
	return pos, hubError(err)
}

func (n *node) Broadcast(ctx context.Context, chs []string, data json.RawMessage, key string) ([]api.ChannelResult, error) {
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

func (n *node) Subscribe(ctx context.Context, user, ch string) (int, error) {
	return n.g().userOp(ctx, "subscribe", user, ch, 0, "")
}

func (n *node) Unsubscribe(ctx context.Context, user, ch string) (int, error) {
	return n.g().userOp(ctx, "unsubscribe", user, ch, 0, "")
}

func (n *node) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	if code == 0 {
		code = protocol.CloseDisconnected
	}
	return n.g().userOp(ctx, "disconnect", user, "", code, reason)
}

// userOp carries out a user operation here and on the other nodes.
func (g *Gateway) userOp(ctx context.Context, op, user, ch string, code int, reason string) (int, error) {
	local, lerr := g.localUserOp(ctx, op, user, ch, code, reason)
	remote, rerr := g.cluster.ask(ctx, op, user, ch, code, reason)
	if lerr != nil {
		return local + remote, lerr
	}
	return local + remote, rerr
}

// localUserOp carries out a user operation on this node's connections of user. A connection
// already (un)subscribed counts as reached; one that is not connected (a raw connection for a
// subscribe) is skipped.
func (g *Gateway) localUserOp(ctx context.Context, op, user, ch string, code int, reason string) (int, error) {
	n := 0
	for _, c := range g.reg.conns(user) {
		var err error
		switch op {
		case "subscribe":
			err = g.hub.Subscribe(ctx, c, ch)
		case "unsubscribe":
			err = g.hub.Unsubscribe(c, ch)
		case "disconnect":
			err = c.Close(wsgate.CloseCode(code), reason)
			if errors.Is(err, wsgate.ErrClosed) {
				err = nil
			}
		default:
			return n, errorf("unknown user operation %q", op)
		}
		var pe *protocol.Error
		switch {
		case err == nil:
			n++
		case errors.Is(err, hub.ErrNotConnected):
		case errors.As(err, &pe) && (pe.Code == protocol.CodeAlreadySubscribed || pe.Code == protocol.CodeNotSubscribed):
			if (pe.Code == protocol.CodeAlreadySubscribed) == (op == "subscribe") {
				n++
			}
		default:
			return n, err
		}
	}
	return n, nil
}

// Presence, PresenceStats and History answer on every channel: a namespace's presence and
// history switches are for clients, and the API is the application's own (docs/API.md).
func (n *node) Presence(ctx context.Context, ch, after string, limit int) (protocol.PresenceResult, error) {
	all := n.hub.Presence(ch)
	sort.Slice(all, func(i, j int) bool { return all[i].Conn < all[j].Conn })
	res := protocol.PresenceResult{Total: len(all)}
	i := 0
	if after != "" {
		i = sort.Search(len(all), func(i int) bool { return all[i].Conn > after })
	}
	res.Clients = all[i:min(len(all), i+limit)]
	if i+limit < len(all) && len(res.Clients) > 0 {
		res.Next = res.Clients[len(res.Clients)-1].Conn
	}
	return res, nil
}

func (n *node) PresenceStats(ctx context.Context, ch string) (api.PresenceStats, error) {
	clients, users := n.hub.PresenceStats(ch)
	return api.PresenceStats{Clients: clients, Users: users}, nil
}

func (n *node) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return n.hub.History(ctx, ch, since, limit)
}

func (n *node) RemoveHistory(ctx context.Context, ch string) error {
	return hubError(n.hub.RemoveHistory(ctx, ch))
}

func (n *node) Channels(ctx context.Context, prefix, after string, limit int) (api.ChannelsResult, error) {
	all := n.hub.Channels() // sorted by name
	i := sort.Search(len(all), func(i int) bool { return all[i].Name > after })
	var res api.ChannelsResult
	for ; i < len(all) && len(res.Channels) < limit; i++ {
		if len(all[i].Name) >= len(prefix) && all[i].Name[:len(prefix)] == prefix {
			res.Channels = append(res.Channels, api.ChannelInfo{Name: all[i].Name, Subscribers: all[i].Subscribers})
		}
	}
	for ; i < len(all); i++ { // is there a next page?
		if len(all[i].Name) >= len(prefix) && all[i].Name[:len(prefix)] == prefix {
			res.Next = res.Channels[len(res.Channels)-1].Name
			break
		}
	}
	return res, nil
}

// started is when the process started, for Info's uptime.
var started = time.Now()

func (n *node) Info(ctx context.Context) (api.NodeInfo, error) {
	count := 0
	var recv, sent uint64
	n.conns.Range(func(k, _ any) bool {
		count++
		st := k.(*wsgate.Conn).Stats()
		recv, sent = recv+st.Received, sent+st.Sent
		return true
	})
	// The closed ones' after the open ones': OnClose adds a connection's counts before it
	// leaves conns, so one closing meanwhile may count twice here, never not at all.
	recv, sent = recv+n.closedReceived.Load(), sent+n.closedSent.Load()
	info := api.NodeInfo{Name: "wsgate", Version: version(), UptimeSeconds: int64(time.Since(started) / time.Second),
		Connections: count, MessagesReceived: recv, MessagesSent: sent}
	if bus := n.hub.Cluster(); bus != nil {
		info.Name = bus.Node()
		info.Nodes = append([]string{bus.Node()}, n.cluster.peers()...)
		sort.Strings(info.Nodes)
	}
	return info, nil
}

// version is the module's version as the build recorded it ("(devel)" from a checkout).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}
