package api

import (
	"context"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/protocol"
)

// routes are the API's endpoints, in api/openapi.yaml's order; the test holds the two together.
// Each decodes its body, checks what the Node should not have to (names, bounds), makes one
// Node call within Options.Timeout, and answers 200 with its result.
var routes = []route{
	{"/publish", handle(checkPublish, func(a *apiHandler, ctx context.Context, req *PublishRequest) (broker.Position, error) {
		return a.node.Publish(ctx, req.Channel, req.Data, req.IdempotencyKey)
	})},
	{"/broadcast", handle(checkBroadcast, func(a *apiHandler, ctx context.Context, req *BroadcastRequest) (BroadcastResult, error) {
		res, err := a.node.Broadcast(ctx, req.Channels, req.Data, req.IdempotencyKey)
		return BroadcastResult{Results: nonNil(res)}, err
	})},
	{"/subscribe", handle(checkUserChannel, func(a *apiHandler, ctx context.Context, req *UserChannelRequest) (ConnectionsResult, error) {
		n, err := a.node.Subscribe(ctx, req.User, req.Channel)
		return ConnectionsResult{Connections: n}, err
	})},
	{"/unsubscribe", handle(checkUserChannel, func(a *apiHandler, ctx context.Context, req *UserChannelRequest) (ConnectionsResult, error) {
		n, err := a.node.Unsubscribe(ctx, req.User, req.Channel)
		return ConnectionsResult{Connections: n}, err
	})},
	{"/disconnect", handle(checkDisconnect, func(a *apiHandler, ctx context.Context, req *DisconnectRequest) (ConnectionsResult, error) {
		n, err := a.node.Disconnect(ctx, req.User, req.Code, req.Reason)
		return ConnectionsResult{Connections: n}, err
	})},
	{"/presence", handle(checkPresence, func(a *apiHandler, ctx context.Context, req *PresenceRequest) (protocol.PresenceResult, error) {
		res, err := a.node.Presence(ctx, req.Channel, req.After, req.Limit)
		res.Clients = nonNil(res.Clients)
		return res, err
	})},
	{"/presence_stats", handle(checkChannel, func(a *apiHandler, ctx context.Context, req *ChannelRequest) (PresenceStats, error) {
		return a.node.PresenceStats(ctx, req.Channel)
	})},
	{"/history", handle(checkHistory, func(a *apiHandler, ctx context.Context, req *HistoryRequest) (broker.HistoryResult, error) {
		res, err := a.node.History(ctx, req.Channel, req.Since, req.Limit)
		res.Publications = nonNil(a.cutHistory(&res))
		return res, err
	})},
	{"/history_remove", handle(checkChannel, func(a *apiHandler, ctx context.Context, req *ChannelRequest) (Empty, error) {
		return Empty{}, a.node.RemoveHistory(ctx, req.Channel)
	})},
	{"/channels", handle(checkChannels, func(a *apiHandler, ctx context.Context, req *ChannelsRequest) (ChannelsResult, error) {
		res, err := a.node.Channels(ctx, req.Prefix, req.After, req.Limit)
		res.Channels = nonNil(res.Channels)
		return res, err
	})},
	{"/info", handle(func(*apiHandler, *http.Request, *Empty) *httpError { return nil }, func(a *apiHandler, ctx context.Context, _ *Empty) (NodeInfo, error) {
		return a.node.Info(ctx)
	})},
}

// handle makes an endpoint: decode a Req, check it (check may complete it: defaults, headers),
// call the Node within the timeout, answer its Res.
func handle[Req, Res any](check func(a *apiHandler, r *http.Request, req *Req) *httpError,
	call func(a *apiHandler, ctx context.Context, req *Req) (Res, error)) func(*apiHandler, http.ResponseWriter, *http.Request) *httpError {
	return func(a *apiHandler, w http.ResponseWriter, r *http.Request) *httpError {
		var req Req
		if e := a.decode(r, &req); e != nil {
			return e
		}
		if e := check(a, r, &req); e != nil {
			return e
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		res, err := call(a, ctx, &req)
		if err != nil {
			return a.fromNode(r, err)
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}
}

// nonNil makes a nil list an empty one: a list in an answer is [] when empty, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func checkPublish(a *apiHandler, r *http.Request, req *PublishRequest) *httpError {
	key, e := idempotencyKey(r, req.IdempotencyKey)
	req.IdempotencyKey = key
	return firstOf(e, validChannel("channel", req.Channel), a.validData(req.Data))
}

func checkBroadcast(a *apiHandler, r *http.Request, req *BroadcastRequest) *httpError {
	key, e := idempotencyKey(r, req.IdempotencyKey)
	if e != nil {
		return e
	}
	req.IdempotencyKey = key
	switch n := len(req.Channels); {
	case n == 0:
		return errorf(http.StatusBadRequest, codeBadChannel, "channels required: one or more")
	case n > a.opts.MaxBroadcast:
		return errorf(http.StatusBadRequest, codeBadRequest, "%d channels, limit %d", n, a.opts.MaxBroadcast)
	}
	seen := make(map[string]struct{}, len(req.Channels))
	for i, ch := range req.Channels {
		if e := validChannel(fmt.Sprintf("channels[%d]", i), ch); e != nil {
			return e
		}
		if _, dup := seen[ch]; dup {
			return errorf(http.StatusBadRequest, codeBadChannel, "channels[%d]: %q named twice", i, ch)
		}
		seen[ch] = struct{}{}
	}
	return a.validData(req.Data)
}

func checkUserChannel(_ *apiHandler, _ *http.Request, req *UserChannelRequest) *httpError {
	return firstOf(validUser(req.User), validChannel("channel", req.Channel))
}

func checkDisconnect(_ *apiHandler, _ *http.Request, req *DisconnectRequest) *httpError {
	if e := validUser(req.User); e != nil {
		return e
	}
	if req.Code == 0 {
		req.Code = protocol.CloseDisconnected
	}
	if req.Code < 4000 || req.Code > 4999 {
		return errorf(http.StatusBadRequest, codeBadRequest, "code %d: an application close code is 4000-4999 (4000-4499 terminal, 4500-4999 reconnect)", req.Code)
	}
	if len(req.Reason) > MaxReasonLen || !utf8.ValidString(req.Reason) {
		return errorf(http.StatusBadRequest, codeBadRequest, "reason: at most %d bytes of UTF-8 (what a close frame carries)", MaxReasonLen)
	}
	return nil
}

func checkChannel(_ *apiHandler, _ *http.Request, req *ChannelRequest) *httpError {
	return validChannel("channel", req.Channel)
}

func checkPresence(_ *apiHandler, _ *http.Request, req *PresenceRequest) *httpError {
	var e *httpError
	req.Limit, e = pageLimit(req.Limit)
	return firstOf(validChannel("channel", req.Channel), e, validCursor(req.After))
}

func checkHistory(_ *apiHandler, _ *http.Request, req *HistoryRequest) *httpError {
	var e *httpError
	req.Limit, e = pageLimit(req.Limit)
	if e = firstOf(validChannel("channel", req.Channel), e); e != nil {
		return e
	}
	if req.Since != nil && len(req.Since.Epoch) > protocol.MaxChannelLen {
		return errorf(http.StatusBadRequest, codeBadRequest, "since.epoch longer than %d bytes", protocol.MaxChannelLen)
	}
	return nil
}

func checkChannels(_ *apiHandler, _ *http.Request, req *ChannelsRequest) *httpError {
	var e *httpError
	req.Limit, e = pageLimit(req.Limit)
	return firstOf(e, validPrefix("prefix", req.Prefix), validPrefix("after", req.After))
}

// cutHistory bounds a history answer by bytes as well as by count: it stops before the
// publication that would take the data beyond MaxResponseBytes (the first is always kept), and
// says more, so the caller asks again from the last one it got.
func (a *apiHandler) cutHistory(res *broker.HistoryResult) []broker.Publication {
	size := 0
	for i, p := range res.Publications {
		size += len(p.Data) + 32 // {"offset":N,"data":} and a comma
		if size > a.opts.MaxResponseBytes && i > 0 {
			res.More = true
			return res.Publications[:i]
		}
	}
	return res.Publications
}
