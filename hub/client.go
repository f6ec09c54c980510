package hub

import (
	"context"
	"sync"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// client is the hub's state for one wsgate.v1 connection, kept in the connection's Data.
type client struct {
	hub  *Hub
	conn *wsgate.Conn
	info protocol.ClientInfo

	mu     sync.Mutex
	subs   map[string]struct{}
	closed bool // OnClose ran: no new subscriptions (a server-side Subscribe may race with it)
}

// addSub reserves a subscription slot; false if already subscribed or at the limit.
func (c *client) addSub(name string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.subs[name]; dup || len(c.subs) >= limit || c.closed {
		return false
	}
	c.subs[name] = struct{}{}
	return true
}

func (c *client) hasSub(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.subs[name]
	return ok
}

func (c *client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *client) dropSub(name string) {
	c.mu.Lock()
	delete(c.subs, name)
	c.mu.Unlock()
}

func (c *client) subNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for n := range c.subs {
		out = append(out, n)
	}
	return out
}

// handler serves wsgate.v1 connections and passes the others to the application.
type handler struct {
	h   *Hub
	app wsgate.Handler
}

func (hd *handler) OnOpen(c *wsgate.Conn) {
	if c.Subprotocol() != protocol.Subprotocol {
		if hd.app != nil {
			hd.app.OnOpen(c)
		}
		return
	}
	h := hd.h
	cl := &client{hub: h, conn: c, info: protocol.ClientInfo{Conn: connID(c)}, subs: map[string]struct{}{}}
	if h.opts.UserID != nil {
		cl.info.User = h.opts.UserID(c)
	}
	c.SetData(cl)
	h.mu.Lock()
	h.clients[cl] = struct{}{}
	h.mu.Unlock()
}

func (hd *handler) OnClose(c *wsgate.Conn, err error) {
	cl, ok := c.Data().(*client)
	if !ok || cl.hub != hd.h {
		if hd.app != nil {
			hd.app.OnClose(c, err)
		}
		return
	}
	h := hd.h
	cl.mu.Lock()
	cl.closed = true
	cl.mu.Unlock()
	for _, name := range cl.subNames() {
		h.unsubscribe(cl, name)
	}
	h.mu.Lock()
	delete(h.clients, cl)
	h.mu.Unlock()
}

func (hd *handler) OnMessage(c *wsgate.Conn, m wsgate.Message) {
	cl, ok := c.Data().(*client)
	if !ok || cl.hub != hd.h {
		if hd.app != nil {
			hd.app.OnMessage(c, m)
		}
		return
	}
	if m.Type != wsgate.Text {
		_ = c.Send(wsgate.Text, protocol.ErrorReply(0, protocol.Errorf(protocol.CodeNotText, "wsgate.v1 frames are JSON text")))
		return
	}
	req, perr := protocol.Parse(m.Data)
	if perr != nil {
		_ = c.Send(wsgate.Text, protocol.ErrorReply(req.ID, perr))
		return
	}
	if reply := hd.h.serve(cl, req); reply != nil {
		_ = c.Send(wsgate.Text, reply)
	}
}

// serve runs one request and returns its reply (nil when subscribe sent it already).
func (h *Hub) serve(cl *client, req protocol.Request) []byte {
	ctx, cancel := context.WithTimeout(cl.conn.Context(), h.opts.RequestTimeout)
	defer cancel()
	if req.Op != protocol.OpPing && req.Op != protocol.OpUnsubscribe && h.opts.Authorize != nil {
		if err := h.opts.Authorize(ctx, cl.conn, req.Op, req.Channel); err != nil {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeForbidden, "%s", err.Error()))
		}
	}
	switch req.Op {
	case protocol.OpPing:
		return protocol.Reply(req.ID, struct{}{})
	case protocol.OpSubscribe:
		if _, perr := h.subscribe(ctx, cl, req.Channel, req.Since, req.Events, req.ID); perr != nil {
			return protocol.ErrorReply(req.ID, perr)
		}
		return nil
	case protocol.OpUnsubscribe:
		if !h.unsubscribe(cl, req.Channel) {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %q", req.Channel))
		}
		return protocol.Reply(req.ID, struct{}{})
	case protocol.OpPublish:
		if len(req.Data) > h.opts.MaxDataSize {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes, limit %d", len(req.Data), h.opts.MaxDataSize))
		}
		// req.Data aliases the frame, which is reused after OnMessage: the publication keeps a copy.
		pos, err := h.broker.Publish(ctx, req.Channel, append([]byte(nil), req.Data...))
		if err != nil {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnavailable, "broker: %v", err))
		}
		return protocol.Reply(req.ID, protocol.PublishResult(pos))
	case protocol.OpPresence:
		return protocol.Reply(req.ID, protocol.PresenceResult{Clients: h.Presence(req.Channel)})
	case protocol.OpHistory:
		limit := req.Limit
		if limit == 0 {
			limit = 100
		}
		hist, err := h.broker.History(ctx, req.Channel, req.Since, limit)
		if err != nil {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnavailable, "broker: %v", err))
		}
		res := protocol.HistoryResult{Epoch: hist.Top.Epoch, Offset: hist.Top.Offset, Complete: hist.Complete,
			Publications: make([]protocol.Publication, 0, len(hist.Publications))}
		for _, p := range hist.Publications {
			res.Publications = append(res.Publications, protocol.Publication{Offset: p.Offset, Data: p.Data})
		}
		return protocol.Reply(req.ID, res)
	}
	return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnknownOp, "unknown op %q", req.Op))
}
