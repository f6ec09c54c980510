package hub

import (
	"context"
	"errors"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// serve runs one request and returns its reply (nil when subscribe queued it already).
func (h *Hub) serve(cl *client, req protocol.Request) []byte {
	// The hook and the broker calls below may wait: publications to this client flow meanwhile.
	// (Ping, presence and unsubscribe without a hook keep the reply on the reader, written inline.)
	// Ended on return, so that the reply itself goes out inline.
	if h.opts.Authorize != nil || req.Op == protocol.OpSubscribe || req.Op == protocol.OpPublish || req.Op == protocol.OpHistory {
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
	if req.Op != protocol.OpPing && req.Op != protocol.OpUnsubscribe && h.opts.Authorize != nil {
		if err := h.opts.Authorize(ctx, cl.conn, nil, &req); err != nil {
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
		return h.servePublish(ctx, req)
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

func (h *Hub) servePublish(ctx context.Context, req protocol.Request) []byte {
	if len(req.Data) > h.opts.MaxDataSize {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeTooLarge, "data of %d bytes, limit %d", len(req.Data), h.opts.MaxDataSize))
	}
	if !h.beginPublish() {
		return protocol.ErrorReply(req.ID, protocol.Errorf(protocol.CodeUnavailable, "server shutting down"))
	}
	defer h.endPublish()
	// req.Data aliases the frame, which is reused after OnMessage: the publication keeps a copy.
	pos, err := h.broker.Publish(ctx, req.Channel, append([]byte(nil), req.Data...))
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
	hist, err := h.broker.History(ctx, req.Channel, req.Since, limit)
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
