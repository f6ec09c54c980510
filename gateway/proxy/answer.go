package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// Bounds on what the backend's words cost a client's reply.
const (
	maxMessageLen = 256 // an error's message, cut on a character boundary
	maxReasonLen  = 123 // a disconnect's reason: what fits in a close frame
	// maxExpireAt is the last second of year 9999; maxExpiresIn is 68 years. Beyond them an
	// expiry is a bad answer (and time arithmetic would overflow).
	maxExpireAt  = 253402300799
	maxExpiresIn = 1<<31 - 1
)

// Error is the error of a call that did not succeed. Reply is what the client is told: its
// code and message are meant for it (the backend's own, or words of this package's that name
// no URL, token or cookie). Disconnect, when set, closes the connection after that reply. The
// rest says why, for the server's log; Error() never holds a token, a cookie, a forwarded
// header or the backend's URL.
//
// Error unwraps to Disconnect (when set), Reply and Cause, so that errors.As finds the
// *hub.Disconnect and the *protocol.Error the hub's hooks answer with.
type Error struct {
	Call       string          // "connect", "refresh", "subscribe", "publish" or "rpc"
	Reply      *protocol.Error // never nil
	Disconnect *hub.Disconnect // nil: the reply only; else its Err is Reply
	Status     int             // the backend's last HTTP status; 0 when none came
	Attempts   int             // requests made; 0 when none was (the call is not configured)
	Cause      error           // the failure behind Reply; nil when the backend refused in its own words
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "proxy: %s: %d %s", e.Call, e.Reply.Code, e.Reply.Message)
	if e.Disconnect != nil {
		fmt.Fprintf(&b, ", disconnect %d", e.Disconnect.Code)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ", HTTP status %d", e.Status)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, ", after %d attempts", e.Attempts)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the errors Error stands for, the one the client sees first.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Disconnect != nil {
		errs = append(errs, e.Disconnect)
	}
	errs = append(errs, e.Reply)
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// badAnswer is the error of an answer that is not what the package doc says: the backend
// failed, which a retry later may not repair, and the client is told no more than that.
func badAnswer(k callKind, format string, args ...any) *Error {
	return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeInternal, "bad answer from the backend"),
		Cause: fmt.Errorf(format, args...)}
}

// refusal is the error of a backend that refused without its own code (401, 403, or a code
// that is not wsgate.v1's): a connect is closed unauthorized, a refresh is answered
// unauthorized (the connection lapses at its expiry), the others are forbidden.
func refusal(k callKind, msg string) *Error {
	switch k {
	case callConnect:
		return disconnect(k, protocol.CloseUnauthorized, protocol.Errorf(protocol.CodeUnauthorized, "%s", or(msg, "unauthorized")))
	case callRefresh:
		return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeUnauthorized, "%s", or(msg, "unauthorized"))}
	}
	return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeForbidden, "%s", or(msg, "forbidden"))}
}

func disconnect(k callKind, code int, reply *protocol.Error) *Error {
	return &Error{Call: k.String(), Reply: reply,
		Disconnect: &hub.Disconnect{Code: wsgate.CloseCode(code), Reason: cut(reply.Message, maxReasonLen), Err: reply}}
}

func or(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// failure maps an attempt that got no usable answer (a transport error, a status other than
// 200, an answer too long) to an *Error.
func (p *Proxy) failure(k callKind, o outcome) *Error {
	var tooLarge errTooLarge
	switch {
	case errors.As(o.err, &tooLarge):
		e := badAnswer(k, "%v", o.err)
		e.Status = o.status
		return e
	case o.err != nil:
		return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeUnavailable, "backend unavailable"), Status: o.status, Cause: o.err}
	case o.status == 401 || o.status == 403:
		e := refusal(k, "")
		e.Status = o.status
		return e
	case o.status >= 500:
		return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeUnavailable, "backend unavailable"), Status: o.status,
			Cause: errors.New("backend failed")}
	}
	e := badAnswer(k, "HTTP status %d", o.status)
	e.Status = o.status
	return e
}

// wireError and wireDisconnect are an answer's refusals.
type wireError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type wireDisconnect struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// decode reads a 200 answer's body: its result, a T, or the *Error its error or disconnect
// stand for. When more than one is set, disconnect wins over error, which wins over result.
// The body is parsed once, into the call's own result type.
func decode[T any](k callKind, body []byte) (*T, *Error) {
	var a struct {
		Result     *T              `json:"result"`
		Error      *wireError      `json:"error"`
		Disconnect *wireDisconnect `json:"disconnect"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, badAnswer(k, "%v", err)
	}
	switch {
	case a.Disconnect != nil:
		d := a.Disconnect
		if d.Code < 4000 || d.Code > 4999 {
			return nil, badAnswer(k, "disconnect code %d, not within 4000-4999", d.Code)
		}
		reply := protocol.Errorf(protocol.CodeForbidden, "%s", or(cut(d.Reason, maxReasonLen), "disconnected"))
		if k == callConnect {
			reply.Code = protocol.CodeUnauthorized
		}
		return nil, disconnect(k, d.Code, reply)
	case a.Error != nil:
		msg := cut(a.Error.Message, maxMessageLen)
		code := protocol.Code(a.Error.Code)
		if !known(code) || code == protocol.CodeUnauthorized && k == callConnect {
			return nil, refusal(k, msg)
		}
		return nil, &Error{Call: k.String(), Reply: &protocol.Error{Code: code, Message: or(msg, "refused by the backend")}}
	case a.Result == nil:
		return nil, badAnswer(k, "no result, error or disconnect")
	}
	return a.Result, nil
}

// known tells whether c is a wsgate.v1 error code, which a backend's error keeps.
func known(c protocol.Code) bool {
	return c >= protocol.CodeBadRequest && c <= protocol.CodeNotAvailable ||
		c >= protocol.CodeInternal && c <= protocol.CodeConnectionLimit
}

// cut shortens s to at most n bytes, on a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// wireIdentity is the result of a connect or refresh.
type wireIdentity struct {
	User      *string         `json:"user"`
	Info      json.RawMessage `json:"info"`
	ExpireAt  int64           `json:"expire_at"`  // unix seconds; 0 never
	ExpiresIn int64           `json:"expires_in"` // seconds from now; 0 never
	Channels  []string        `json:"channels"`
	Expired   bool            `json:"expired"` // refresh: the session is over
}

// identity checks a connect or refresh result; user is the connection's user for a refresh.
func (p *Proxy) identity(k callKind, w *wireIdentity, user string) (*hub.Identity, error) {
	if w.Expired && k == callRefresh {
		return nil, &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeTokenExpired, "session expired")}
	}
	id := &hub.Identity{User: user}
	switch {
	case w.User == nil:
	case k == callRefresh && *w.User != user:
		return nil, badAnswer(k, "a refresh answered for another user")
	case len(*w.User) > hub.MaxUserLen:
		return nil, badAnswer(k, "user of %d bytes, at most %d", len(*w.User), hub.MaxUserLen)
	default:
		id.User = *w.User
	}
	if info := compact(w.Info); len(info) > 0 && !bytes.Equal(info, []byte("null")) {
		if len(info) > hub.MaxInfoLen {
			return nil, badAnswer(k, "info of %d bytes, at most %d", len(info), hub.MaxInfoLen)
		}
		id.Info = info
	}
	switch {
	case w.ExpireAt != 0 && w.ExpiresIn != 0:
		return nil, badAnswer(k, "both expire_at and expires_in")
	case w.ExpireAt < 0 || w.ExpireAt > maxExpireAt:
		return nil, badAnswer(k, "expire_at %d out of range", w.ExpireAt)
	case w.ExpiresIn < 0 || w.ExpiresIn > maxExpiresIn:
		return nil, badAnswer(k, "expires_in %d out of range", w.ExpiresIn)
	case w.ExpireAt != 0:
		id.ExpiresAt = time.Unix(w.ExpireAt, 0)
	case w.ExpiresIn != 0:
		id.ExpiresAt = time.Now().Add(time.Duration(w.ExpiresIn) * time.Second)
	}
	if len(w.Channels) > p.cfg.MaxChannels {
		return nil, badAnswer(k, "%d channels, at most %d", len(w.Channels), p.cfg.MaxChannels)
	}
	for i, ch := range w.Channels {
		if perr := protocol.ValidChannel(ch); perr != nil {
			return nil, badAnswer(k, "channels[%d]: %s", i, perr.Message)
		}
		if !slices.Contains(id.Channels, ch) { // at most MaxChannels², 16k comparisons by default
			id.Channels = append(id.Channels, ch)
		}
	}
	return id, nil
}

// wireData is the result of a publish or rpc.
type wireData struct {
	Data json.RawMessage `json:"data"`
}

// data checks the "data" of a publish or rpc result: dflt when it has none.
func (p *Proxy) data(k callKind, w *wireData, dflt json.RawMessage) (json.RawMessage, error) {
	if len(w.Data) == 0 {
		return dflt, nil
	}
	data := compact(w.Data)
	if len(data) > p.cfg.MaxDataSize {
		return nil, badAnswer(k, "data of %d bytes, at most %d", len(data), p.cfg.MaxDataSize)
	}
	return data, nil
}

// compact drops the insignificant spaces of raw, valid JSON: info goes into every presence
// page, data to every subscriber, and a bound applies to what they carry, not to the layout.
func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(raw))
	if json.Compact(&b, raw) != nil {
		return raw // json.Unmarshal checked it
	}
	return b.Bytes()
}
