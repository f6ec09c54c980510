package gateway

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// The decisions on a connection's requests: the namespaces' rules, the user channels, the
// private channels' grants, and the backend's say on publications and rpc.

// authorize is hub.Options.Authorize: the namespace's rules and the user channels.
func (g *Gateway) authorize(ctx context.Context, c *wsgate.Conn, id *hub.Identity, req *protocol.Request) error {
	if req.Op == protocol.OpRPC {
		return nil
	}
	user := ""
	if id != nil {
		user = id.User
	}
	ch := req.Channel
	if !g.cfg.UserChannels.Disabled {
		if isUser, member := userChannel(ch, user); isUser && !member {
			return protocol.Errorf(protocol.CodeForbidden, "channel %q is for the users it names only", ch)
		}
	}
	r := g.ns.of(ch)
	switch req.Op {
	case protocol.OpPublish:
		if !r.publish {
			return protocol.Errorf(protocol.CodeForbidden, "clients may not publish on %q", ch)
		}
		return g.granted(c, id, r, ch) // a private channel's publishers are those it let in
	case protocol.OpSubscribe:
		if req.Events && r.opts.NoJoinLeave {
			return protocol.Errorf(protocol.CodeNotAvailable, "no join and leave pushes on %q", ch)
		}
		return g.authorizeSubscribe(ctx, c, id, r, req)
	case protocol.OpPresence:
		if r.opts.NoPresence {
			return protocol.Errorf(protocol.CodeNotAvailable, "no presence on %q", ch)
		}
		return g.granted(c, id, r, ch)
	case protocol.OpHistory:
		if r.opts.NoHistory {
			return protocol.Errorf(protocol.CodeNotAvailable, "no history on %q", ch)
		}
		return g.granted(c, id, r, ch)
	}
	return nil
}

// authorizeSubscribe checks a subscription to a private channel: its channel token, or the
// backend's answer. What it lets in lasts as long as the subscription (granted).
func (g *Gateway) authorizeSubscribe(ctx context.Context, c *wsgate.Conn, id *hub.Identity, r *rules, req *protocol.Request) error {
	user := ""
	if id != nil {
		user = id.User
	}
	switch r.subscribe {
	case SubscribeOpen:
		return nil
	case SubscribeToken:
		if req.Token == "" {
			return protocol.Errorf(protocol.CodeForbidden, "channel %q needs a channel token", req.Channel)
		}
		if err := g.auth.VerifyChannel(ctx, req.Token, user, req.Channel); err != nil {
			if g.auth.Expired(err) {
				return protocol.Errorf(protocol.CodeTokenExpired, "channel token: %v", err)
			}
			return protocol.Errorf(protocol.CodeForbidden, "channel token: %v", err)
		}
	case SubscribeBackend:
		if err := g.be.Subscribe(ctx, proxy.SubscribeRequest{Client: clientOf(c, id), Channel: req.Channel, Token: req.Token}); err != nil {
			return err
		}
	}
	return nil
}

// granted lets presence, history and publish of a private channel through only for a
// connection that is subscribed to it now (let in by its channel token, the backend, or a
// server-side subscription, and not unsubscribed since), or whose identity names it (its
// token's or the backend's channels). The hub's subscription is the one record: what an
// unsubscribe (the client's, the API's, on any node) ends, it ends here too.
func (g *Gateway) granted(c *wsgate.Conn, id *hub.Identity, r *rules, ch string) error {
	if r.subscribe == SubscribeOpen {
		return nil
	}
	if id != nil && slices.Contains(id.Channels, ch) {
		return nil
	}
	if g.hub != nil && g.hub.Subscribed(c, ch) {
		return nil
	}
	return protocol.Errorf(protocol.CodeForbidden, "channel %q is private: subscribe to it first", ch)
}

// channel is hub.Options.Channel.
func (g *Gateway) channel(ch string) hub.ChannelOptions { return g.ns.of(ch).opts }

// publish is hub.Options.Publish: the backend allows, refuses or replaces the data.
func (g *Gateway) publish(ctx context.Context, c *wsgate.Conn, id *hub.Identity, ch string, data json.RawMessage) (json.RawMessage, error) {
	out, err := g.be.Publish(ctx, proxy.PublishRequest{Client: clientOf(c, id), Channel: ch, Data: data})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return data, nil
	}
	return out, nil
}

// rpc is hub.Options.RPC.
func (g *Gateway) rpc(ctx context.Context, c *wsgate.Conn, id *hub.Identity, method string, data json.RawMessage) (json.RawMessage, error) {
	return g.be.RPC(ctx, proxy.RPCRequest{Client: clientOf(c, id), Method: method, Data: data})
}
