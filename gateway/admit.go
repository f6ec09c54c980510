package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Admit is wsgate.Config.Admit: it runs before every upgrade. It limits handshakes per client
// address (429 with Retry-After), and establishes the identity of the upgrade request from a
// token in its Authorization: Bearer header, its auth.cookie cookie or its auth.query parameter
// (verified: 401 with the reason when it is not valid), or for a raw connection without a
// token from the backend with the request's cookies (403 when it refuses). A raw connection
// must be identified when auth is configured (401 without a token, unless auth.anonymous); a
// wsgate.v1 connection may identify itself later with its connect request. A raw connection of
// a user at limits.connections_per_user gets 429. What it returns, a *hub.Identity or nil, is
// the connection's Conn.Auth.
//
// Nothing it logs or answers holds the token.
func (g *Gateway) Admit(r *http.Request) (any, error) {
	if ok, wait := g.hs.allow(wsgate.ClientAddr(r), g.now()); !ok {
		return nil, &wsgate.RejectError{Status: http.StatusTooManyRequests, Message: "too many handshakes from this address", RetryAfter: wait}
	}
	if !g.cfg.authConfigured() {
		return nil, nil
	}
	v1 := offers(r, protocol.Subprotocol)
	token, from := g.token(r)
	var id *hub.Identity
	var err error
	switch {
	case token != "" && g.auth != nil:
		id, err = g.auth.Verify(r.Context(), token)
		if err != nil {
			return nil, &wsgate.RejectError{Status: http.StatusUnauthorized, Message: from + ": " + err.Error()}
		}
	case v1:
		return nil, nil // its connect request carries the token, or asks the backend
	case token != "" && g.cfg.Auth.ConnectURL != "", token == "" && g.cfg.Auth.ConnectURL != "":
		id, err = g.be.Connect(r.Context(), proxy.ConnectRequest{Client: rawClient(r), Token: token})
		if err != nil {
			var perr *protocol.Error
			if errors.As(err, &perr) && perr.Code == protocol.CodeUnauthorized {
				return nil, &wsgate.RejectError{Status: http.StatusForbidden, Message: "refused by the backend: " + perr.Message}
			}
			if errors.As(err, &perr) {
				return nil, &wsgate.RejectError{Status: perr.HTTPStatus(), Message: "backend: " + perr.Message}
			}
			return nil, &wsgate.RejectError{Status: http.StatusServiceUnavailable, Message: "backend unavailable", RetryAfter: time.Second}
		}
	case g.cfg.Auth.Anonymous:
		return nil, nil
	default:
		return nil, &wsgate.RejectError{Status: http.StatusUnauthorized, Message: g.wantToken()}
	}
	if !v1 && id.User != "" && g.cfg.Limits.ConnectionsPerUser > 0 && g.reg.count(id.User) >= g.cfg.Limits.ConnectionsPerUser {
		return nil, &wsgate.RejectError{Status: http.StatusTooManyRequests, Message: "too many connections for this user",
			RetryAfter: 5 * time.Second}
	}
	return id, nil
}

// token finds the upgrade request's token and says where it was.
func (g *Gateway) token(r *http.Request) (token, from string) {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), "Authorization header"
	}
	if name := g.cfg.Auth.Cookie; name != "" {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value, "cookie " + name
		}
	}
	if name := g.cfg.Auth.Query; name != "" {
		if t := r.URL.Query().Get(name); t != "" {
			return t, "query parameter " + name
		}
	}
	return "", ""
}

// wantToken says where a raw connection's token goes.
func (g *Gateway) wantToken() string {
	where := []string{"an Authorization: Bearer header"}
	if g.cfg.Auth.Cookie != "" {
		where = append(where, "the cookie "+g.cfg.Auth.Cookie)
	}
	if g.cfg.Auth.Query != "" {
		where = append(where, "the query parameter "+g.cfg.Auth.Query)
	}
	return "token required: send it in " + strings.Join(where, ", or ")
}

// offers reports whether the upgrade request offers the subprotocol.
func offers(r *http.Request, proto string) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == proto {
				return true
			}
		}
	}
	return false
}
