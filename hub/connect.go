package hub

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

// The connect, refresh and rpc requests, and how a hook's error becomes a reply.

// serveConnect answers a connect request. Without Options.Connect it names the anonymous client;
// with it, the hook's Identity becomes the connection's: its server-side channels are subscribed
// (their live publications held back until the reply is queued, so none comes before it), its
// expiry scheduled, and OnConnect told. A connection connects at most once (111 after).
func (h *Hub) serveConnect(ctx context.Context, cl *client, req protocol.Request) []byte {
	cl.mu.Lock()
	answered := cl.answered
	cl.mu.Unlock()
	if answered {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeAlreadyConnected, "already connected"))
	}
	if h.opts.Connect == nil {
		cl.mu.Lock()
		cl.answered = true
		cl.mu.Unlock()
		return protocol.Reply(req.ID, protocol.ConnectResult{Client: cl.info.Conn, User: cl.info.User})
	}
	id, err := h.opts.Connect(ctx, cl.conn, req.Token)
	if err != nil {
		return h.refuse(cl, req.ID, err, protocol.CodeUnauthorized, true)
	}
	if id == nil {
		id = &Identity{}
	}
	if perr := h.checkIdentity(id); perr != nil {
		h.opts.Logger.Error("hub: the connect hook returned an identity the hub refuses", "err", perr.Message)
		cl.reply(protocol.ErrorReply(req.ID, perr))
		_ = cl.conn.Close(protocol.CloseUnauthorized, perr.Message)
		return nil
	}
	now := time.Now()
	if !id.ExpiresAt.IsZero() && !id.ExpiresAt.After(now) {
		// As an expiry while connected: 110, then close 4501 (reconnect with a fresh token). The
		// hook took the identity as good (it may have counted the connection as its user's): the
		// connection does not stay to connect again as someone else.
		return h.refuse(cl, req.ID, &Disconnect{Code: protocol.CloseTokenExpired, Reason: "token expired",
			Err: protocol.Errorf(protocol.CodeTokenExpired, "token expired")}, protocol.CodeTokenExpired, true)
	}
	// The hub keeps its own copy: what the hook holds may change, the connection's may not.
	own := &Identity{User: id.User, Info: slices.Clone(id.Info), ExpiresAt: id.ExpiresAt, Channels: slices.Clone(id.Channels)}
	cl.info.User, cl.info.Info = own.User, own.Info // before any subscription shows them
	cl.mu.Lock()
	cl.connected, cl.answered, cl.id = true, true, own
	if own.ExpiresAt.IsZero() {
		h.dl.cancel(cl)
	} else {
		h.dl.schedule(cl, own.ExpiresAt, deadlineExpiry)
	}
	cl.mu.Unlock()

	res := protocol.ConnectResult{Client: cl.info.Conn, User: own.User, ExpiresIn: expiresIn(own.ExpiresAt, now)}
	for _, name := range own.Channels {
		if perr := protocol.ValidChannel(name); perr != nil {
			h.opts.Logger.Warn("hub: identity channel not subscribed", "channel", name, "err", perr.Message)
			continue
		}
		sr, perr := h.subscribe(ctx, cl, name, subReq{hold: true})
		if perr != nil {
			h.opts.Logger.Warn("hub: identity channel not subscribed", "channel", name, "err", perr.Message)
			continue
		}
		res.Subscribed = append(res.Subscribed, protocol.SubscribedChannel{Channel: name, Epoch: sr.Epoch, Offset: sr.Offset})
	}
	if h.opts.OnConnect != nil {
		h.opts.OnConnect(cl.conn, own)
	}
	cl.reply(protocol.Reply(req.ID, res))
	for _, s := range res.Subscribed {
		h.goLive(cl, s.Channel)
	}
	return nil
}

// checkIdentity refuses what the hub cannot carry: a user over MaxUserLen, info over MaxInfoLen
// or not JSON.
func (h *Hub) checkIdentity(id *Identity) *protocol.Error {
	switch {
	case len(id.User) > MaxUserLen:
		return protocol.Errorf(protocol.CodeUnauthorized, "identity user of %d bytes, limit %d", len(id.User), MaxUserLen)
	case len(id.Info) > MaxInfoLen:
		return protocol.Errorf(protocol.CodeUnauthorized, "identity info of %d bytes, limit %d", len(id.Info), MaxInfoLen)
	case len(id.Info) > 0 && !json.Valid(id.Info):
		return protocol.Errorf(protocol.CodeUnauthorized, "identity info is not JSON")
	}
	return nil
}

// serveRefresh answers a refresh request: the hook's identity (the same user) gives the
// connection's new expiry. A failed refresh changes nothing: the connection lapses at its expiry,
// unless the hook said *Disconnect.
func (h *Hub) serveRefresh(ctx context.Context, cl *client, req protocol.Request, id *Identity) []byte {
	if h.opts.Refresh == nil {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeNotAvailable, "refresh is not available on this server"))
	}
	if id == nil {
		id = &Identity{}
	}
	cur := *id // the hook's to look at, not to change ours
	nid, err := h.opts.Refresh(ctx, cl.conn, &cur, req.Token)
	if err != nil {
		return h.refuse(cl, req.ID, err, protocol.CodeUnauthorized, false)
	}
	if nid == nil || nid.User != id.User {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnauthorized, "the token is not the connection's user's"))
	}
	now := time.Now()
	if !nid.ExpiresAt.IsZero() && !nid.ExpiresAt.After(now) {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTokenExpired, "token expired"))
	}
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	var next Identity // without Connect, a connection has none yet
	if cl.id != nil {
		next = *cl.id
	}
	next.ExpiresAt = nid.ExpiresAt
	cl.id = &next
	if next.ExpiresAt.IsZero() {
		h.dl.cancel(cl)
	} else {
		h.dl.schedule(cl, next.ExpiresAt, deadlineExpiry)
	}
	cl.mu.Unlock()
	return protocol.Reply(req.ID, protocol.RefreshResult{ExpiresIn: expiresIn(nid.ExpiresAt, now)})
}

// serveRPC answers an rpc request with the hook's result, within MaxReplyBytes.
func (h *Hub) serveRPC(ctx context.Context, cl *client, req protocol.Request, id *Identity) []byte {
	// req.Data aliases the frame: the hook gets a copy it may keep.
	res, err := h.opts.RPC(ctx, cl.conn, id, req.Method, slices.Clone(req.Data))
	if err != nil {
		return h.refuse(cl, req.ID, err, protocol.CodeForbidden, false)
	}
	if len(res) == 0 {
		res = json.RawMessage("null")
	}
	switch {
	case len(res) > h.opts.MaxReplyBytes-rpcReplyOverhead:
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTooLarge, "rpc result of %d bytes, limit %d", len(res), h.opts.MaxReplyBytes-rpcReplyOverhead))
	case !json.Valid(res):
		h.opts.Logger.Error("hub: the rpc hook returned a result that is not JSON", "method", req.Method)
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeInternal, "the rpc result is not JSON"))
	}
	return protocol.Reply(req.ID, res)
}

// rpcReplyOverhead is the bytes of an rpc reply besides its result.
const rpcReplyOverhead = 64

// refuse answers a hook's error on request id: a *Disconnect is replied to (its Err, or 104 with
// its reason), then closes with its code; a *protocol.Error is the reply; any other error answers
// code with its text, and closes with protocol.CloseUnauthorized when closeOther (a failed
// connect).
func (h *Hub) refuse(cl *client, id uint64, err error, code protocol.Code, closeOther bool) []byte {
	var d *Disconnect
	var perr *protocol.Error
	switch {
	case errors.As(err, &d):
		e := d.Err
		if e == nil {
			e = protocol.Errorf(protocol.CodeForbidden, "%s", d.Reason)
		}
		cl.reply(protocol.ErrorReply(id, e))
		if cl.conn.Close(d.Code, d.Reason) != nil { // not a code a server may send
			_ = cl.conn.Close(protocol.CloseDisconnected, d.Reason)
		}
		return nil
	case errors.As(err, &perr):
		return protocol.ErrorReply(id, perr)
	case closeOther:
		cl.reply(protocol.ErrorReply(id, protocol.Errorf(code, "%s", err.Error())))
		_ = cl.conn.Close(protocol.CloseUnauthorized, "unauthorized")
		return nil
	}
	return protocol.ErrorReply(id, protocol.Errorf(code, "%s", err.Error()))
}

// expiresIn is the seconds from now to at, rounded up (0: never; at least 1 for a future at).
func expiresIn(at, now time.Time) int64 {
	if at.IsZero() {
		return 0
	}
	return max(1, int64(math.Ceil(at.Sub(now).Seconds())))
}
