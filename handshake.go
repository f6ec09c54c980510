package wsgate

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// The opening handshake (RFC 6455 §4.2.1): what ServeHTTP checks before it upgrades, and what it
// hands the transport. Every refusal is wsgate's own reply, with a fixed text: nothing the client
// sent is echoed back, and the transport never gets a request it could refuse in its own words.

// checkHandshake validates an opening handshake and returns 0 or the status to answer with.
func checkHandshake(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return http.StatusMethodNotAllowed, "method must be GET"
	}
	if !r.ProtoAtLeast(1, 1) {
		return http.StatusBadRequest, "HTTP/1.1 or later required"
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return http.StatusBadRequest, "not a websocket handshake: 'Connection: Upgrade' and 'Upgrade: websocket' required"
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return http.StatusUpgradeRequired, "unsupported version: Sec-WebSocket-Version must be 13"
	}
	// RFC 6455 §11.3.1: Sec-WebSocket-Key must not appear more than once in a request.
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return http.StatusBadRequest, "bad Sec-WebSocket-Key: exactly one required"
	}
	if b, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(b) != 16 {
		return http.StatusBadRequest, "bad Sec-WebSocket-Key"
	}
	// A GET has no body here (RFC 9110 §9.3.1 gives it no meaning): bytes after the headers would
	// be read as the first WebSocket frames.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return http.StatusBadRequest, "a handshake has no body"
	}
	return 0, ""
}

// headerHasToken reports whether the comma-separated header name contains token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// transportRequest is the handshake as the transport gets it: only the fields it reads, in the
// one form it accepts. checkHandshake has accepted r, whose Upgrade and Connection may list more
// tokens ("websocket, foo", RFC 9110 §7.8) or span several lines, which the transport reads only
// the first of; proto is the subprotocol chosen, "" for none. r itself stays as the client sent it.
func transportRequest(r *http.Request, proto string) *http.Request {
	h := http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {r.Header.Get("Sec-WebSocket-Key")},
	}
	if ext := r.Header.Values("Sec-WebSocket-Extensions"); len(ext) > 0 {
		h["Sec-Websocket-Extensions"] = []string{strings.Join(ext, ", ")}
	}
	if proto != "" {
		// The transport reads only the first Sec-WebSocket-Protocol line; RFC 6455 §11.3.4 lets a
		// client send several. Hand it the one we chose.
		h["Sec-Websocket-Protocol"] = []string{proto}
	}
	return &http.Request{Method: http.MethodGet, Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: h, Host: r.Host, RemoteAddr: r.RemoteAddr}
}
