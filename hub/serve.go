package hub

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// serve runs one request and returns its reply (nil when subscribe queued it already).
func (h *Hub) serve(cl *client, req protocol.Request) []byte {
	id, connected := cl.identity()
	if !connected && req.Op != protocol.OpPing && req.Op != protocol.OpConnect {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnauthorized, "connect first"))
	}
	// The hooks and the broker calls below may wait: publications to this client flow meanwhile.
	// (Ping, presence and unsubscribe without a hook keep the reply on the reader, written inline.)
	// Ended on return, so that the reply itself goes out inline.
	switch req.Op {
	case protocol.OpPing, protocol.OpPresence, protocol.OpUnsubscribe:
		if h.opts.Authorize != nil && req.Op == protocol.OpPresence {
			defer cl.conn.WriteBehind()()
		}
	default:
		defer cl.conn.WriteBehind()()
	}
	// Room for the reply first: a client that pipelines requests faster than it reads the replies
	// is slowed down by TCP, not cut as a slow consumer. One that does not read for RequestTimeout
	// is closed (1013): its reply could not be queued.
	need := replyReserve
	if req.Op == protocol.OpHistory || req.Op == protocol.OpSubscribe && req.Since != nil {
		need += h.opts.MaxReplyBytes
	}
	if msgs, free := cl.conn.SendQueueFree(); msgs == 0 || free < need {
		wait, cancelWait := context.WithTimeout(cl.conn.Context(), h.opts.RequestTimeout)
		err := cl.conn.WaitSendQueue(wait, need)
		cancelWait()
		switch {
		case errors.Is(err, wsgate.ErrClosed):
			return nil
		case err != nil:
			_ = cl.conn.Close(wsgate.CloseTryAgainLater, "reply could not be queued")
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(cl.conn.Context(), h.opts.RequestTimeout)
	defer cancel()
	switch req.Op {
	case protocol.OpPing:
		return protocol.Reply(req.ID, struct{}{})
	case protocol.OpConnect:
		return h.serveConnect(ctx, cl, req)
	case protocol.OpRefresh:
		return h.serveRefresh(ctx, cl, req, id)
	case protocol.OpUnsubscribe:
		if !h.unsubscribe(cl, req.Channel) {
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeNotSubscribed, "not subscribed to %q", req.Channel))
		}
		return protocol.Reply(req.ID, struct{}{})
	}
	// What the channel's namespace does not offer, before asking the hook.
	var co ChannelOptions
	if h.opts.Channel != nil && req.Channel != "" {
		co = h.opts.Channel(req.Channel)
	}
	switch {
	case req.Op == protocol.OpPresence && co.NoPresence:
		return notAvailable(req, "presence")
	case req.Op == protocol.OpSubscribe && req.Events && (co.NoPresence || co.NoJoinLeave):
		return notAvailable(req, "join and leave pushes")
	case req.Op == protocol.OpHistory && co.NoHistory:
		return notAvailable(req, "history")
	case req.Op == protocol.OpRPC && h.opts.RPC == nil:
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeNotAvailable, "rpc is not available on this server"))
	}
	if h.opts.Authorize != nil {
		if err := h.opts.Authorize(ctx, cl.conn, id, &req); err != nil {
			return h.refuse(cl, req.ID, err, protocol.CodeForbidden, false)
		}
	}
	switch req.Op {
	case protocol.OpSubscribe:
		r := subReq{since: req.Since, events: req.Events, noRecover: co.NoRecovery, id: req.ID}
		if _, perr := h.subscribe(ctx, cl, req.Channel, r); perr != nil {
			return protocol.ErrorReply(req.ID, perr)
		}
		return nil
	case protocol.OpRPC:
		return h.serveRPC(ctx, cl, req, id)
	case protocol.OpPublish:
		return h.servePublish(ctx, cl, req, id)
	case protocol.OpPresence:
		limit := req.Limit
		if limit == 0 {
			limit = protocol.DefaultPresenceLimit
		}
		return protocol.Reply(req.ID, h.presencePage(cl, req.Channel, req.After, limit))
	case protocol.OpHistory:
		return h.serveHistory(ctx, cl, req)
	}
	return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnknownOp, "unknown op %q", req.Op))
}

func (h *Hub) servePublish(ctx context.Context, cl *client, req protocol.Request, id *Identity) []byte {
	if len(req.Data) > h.opts.MaxDataSize {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes, limit %d", len(req.Data), h.opts.MaxDataSize))
	}
	// req.Data aliases the frame, which is reused after OnMessage: the publication keeps a copy.
	data := json.RawMessage(append([]byte(nil), req.Data...))
	if h.opts.Publish != nil {
		out, err := h.opts.Publish(ctx, cl.conn, id, req.Channel, data)
		if err != nil {
			return h.refuse(cl, req.ID, err, protocol.CodeForbidden, false)
		}
		// The hook's data is checked as the client's was: JSON in UTF-8, within MaxDataSize.
		switch {
		case len(out) > h.opts.MaxDataSize:
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes after the publish hook, limit %d", len(out), h.opts.MaxDataSize))
		case !json.Valid(out) || !utf8.Valid(out):
			h.opts.Logger.Error("hub: the publish hook returned data that is not JSON in UTF-8", "channel", req.Channel)
			return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeInternal, "the publish hook returned data that is not JSON"))
		}
		data = out
	}
	if !h.beginPublish() {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnavailable, "server shutting down"))
	}
	defer h.endPublish()
	pos, err := h.publish(ctx, req.Channel, data)
	if err != nil {
		return protocol.ErrorReply(req.ID, brokerError(err))
	}
	return protocol.Reply(req.ID, pos)
}

// serveHistory answers a history request with one page: at most limit publications, within
// MaxReplyBytes and what the connection's queue takes now; "more" says that the client should
// ask again from the last one given.
func (h *Hub) serveHistory(ctx context.Context, cl *client, req protocol.Request) []byte {
	limit := req.Limit
	if limit == 0 {
		limit = protocol.DefaultHistoryLimit
	}
	hist, err := h.history(ctx, req.Channel, req.Since, limit)
	if err != nil {
		return protocol.ErrorReply(req.ID, brokerError(err))
	}
	// Without since, a page too small for the latest limit holds the oldest of them: the rest
	// follow it, as with since.
	var more bool
	hist.Publications, more = h.page(cl, hist.Publications)
	hist.More = hist.More || more
	return protocol.HistoryReply(req.ID, hist)
}

// notAvailable refuses a request for what the channel's namespace does not offer.
func notAvailable(req protocol.Request, what string) []byte {
	return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeNotAvailable, "%s not available on channel %q", what, req.Channel))
}
