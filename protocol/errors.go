package protocol

import "fmt"

// Code is a stable error code of wsgate.v1. Codes are never renumbered; new ones are added.
type Code int

// Error codes. 1xx: the request is wrong and retrying it unchanged will fail again. 2xx: the
// request was refused now and may succeed later.
const (
	CodeBadRequest        Code = 100 // not JSON, no id, no op, missing or invalid fields
	CodeUnknownOp         Code = 101 // op not known to this server
	CodeBadChannel        Code = 102 // channel name missing or invalid
	CodeTooLarge          Code = 103 // data larger than the server allows
	CodeForbidden         Code = 104 // the authorization hook refused
	CodeNotSubscribed     Code = 105 // unsubscribe from a channel not subscribed
	CodeAlreadySubscribed Code = 106 // subscribe twice to one channel
	CodeLimitExceeded     Code = 107 // too many subscriptions on this connection
	CodeNotText           Code = 108 // a binary frame on a wsgate.v1 connection
	CodeUnauthorized      Code = 109 // no connect yet, or a token (or a backend) that does not identify anyone
	CodeTokenExpired      Code = 110 // the token's exp has passed: get a fresh one (connect again, or refresh)
	CodeAlreadyConnected  Code = 111 // connect on a connection that is connected
	CodeNotAvailable      Code = 112 // a feature this server, or the channel's namespace, does not offer (rpc, refresh, presence, history)
	CodeInternal          Code = 200 // the server failed; retry later
	CodeUnavailable       Code = 201 // the broker is unavailable, or the server is shutting down; retry later
	CodeFull              Code = 202 // the broker is at capacity and found nothing to evict to make room; retry later
	CodeRateLimited       Code = 203 // more requests than the connection's rate allows; slow down
	CodeConnectionLimit   Code = 204 // the user has as many connections as allowed; close one, or retry later
)

// Error is the error object of a reply.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("wsgate.v1 error %d: %s", e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// HTTPStatus is the HTTP status an HTTP API answers for e: 4xx for what the caller must change,
// 429 for limits it must wait out, 503 for what a retry later may get through (the broker
// unavailable, at capacity, or the server shutting down), 500 otherwise.
func (e *Error) HTTPStatus() int {
	switch e.Code {
	case CodeBadRequest, CodeUnknownOp, CodeBadChannel, CodeNotText:
		return 400
	case CodeUnauthorized, CodeTokenExpired:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotSubscribed, CodeNotAvailable:
		return 404
	case CodeAlreadySubscribed, CodeAlreadyConnected:
		return 409
	case CodeTooLarge:
		return 413
	case CodeLimitExceeded, CodeRateLimited, CodeConnectionLimit:
		return 429
	case CodeUnavailable, CodeFull:
		return 503
	}
	return 500
}

// Close codes of wsgate.v1, beside RFC 6455's. 4000-4499 are terminal (the same would fail
// again: the client stops), 4500-4999 ask the client to reconnect with backoff, as
// wsgate.CloseCode.Reconnectable says for server, JS client and CLI alike.
const (
	CloseUnauthorized    = 4001 // the token, or the backend, identified no one: terminal
	CloseConnectTimeout  = 4002 // no connect within the server's connect timeout: terminal
	CloseDisconnected    = 4003 // disconnected by the application (its API or backend): terminal
	CloseTokenExpired    = 4501 // the token expired and was not refreshed in time: reconnect with a fresh one
	CloseConnectionLimit = 4503 // the user has as many connections as allowed: reconnect later
)
