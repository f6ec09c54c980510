package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Subprotocol is the name negotiated in Sec-WebSocket-Protocol.
const Subprotocol = "wsgate.v1"

// Op is a request operation.
type Op string

// The operations of wsgate.v1.
const (
	OpSubscribe   Op = "subscribe"
	OpUnsubscribe Op = "unsubscribe"
	OpPublish     Op = "publish"
	OpPresence    Op = "presence"
	OpHistory     Op = "history"
	OpPing        Op = "ping"
)

// Limits of the protocol itself; a server may set lower ones.
const (
	MaxChannelLen   = 255
	MaxHistoryLimit = 1000
)

// Position is a place in a channel's stream: the epoch names one unbroken history, the offset
// counts publications in it (the first publication has offset 1).
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Request is a parsed client request.
type Request struct {
	ID      uint64          `json:"id"`
	Op      Op              `json:"op"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`     // publish
	Since   *Position       `json:"since,omitempty"`    // subscribe (recover), history
	Limit   int             `json:"limit,omitempty"`    // history
	Events  bool            `json:"presence,omitempty"` // subscribe: also push join and leave
}

// Publication is one message of a channel's stream.
type Publication struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// ClientInfo identifies a subscriber in presence and join/leave pushes.
type ClientInfo struct {
	Conn string `json:"conn"`
	User string `json:"user,omitempty"`
}

// SubscribeResult answers a subscribe. Recovered says whether every publication after the
// requested position is in Publications; if not, the client missed some and must resync.
type SubscribeResult struct {
	Epoch        string        `json:"epoch"`
	Offset       uint64        `json:"offset"`
	Recovered    bool          `json:"recovered"`
	Publications []Publication `json:"publications,omitempty"`
}

// PublishResult answers a publish with the publication's position.
type PublishResult struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// HistoryResult answers a history request; Complete is false when older publications than the
// requested position are gone, or the epoch changed.
type HistoryResult struct {
	Epoch        string        `json:"epoch"`
	Offset       uint64        `json:"offset"`
	Complete     bool          `json:"complete"`
	Publications []Publication `json:"publications"`
}

// PresenceResult answers a presence request.
type PresenceResult struct {
	Clients []ClientInfo `json:"clients"`
}

// Parse decodes and validates one request frame. The returned error is always an *Error with a
// code for the reply; when the frame was JSON with an id, the request is returned with that id so
// the error can be addressed to it.
func Parse(frame []byte) (Request, *Error) {
	var r Request
	if len(bytes.TrimSpace(frame)) == 0 {
		return r, Errorf(CodeBadRequest, "empty frame")
	}
	if err := json.Unmarshal(frame, &r); err != nil {
		var id struct {
			ID uint64 `json:"id"`
		}
		_ = json.Unmarshal(frame, &id) // best effort: address the error to the request
		r = Request{ID: id.ID}
		return r, Errorf(CodeBadRequest, "malformed request: %v", err)
	}
	if r.ID == 0 {
		return r, Errorf(CodeBadRequest, "request without an id (ids start at 1)")
	}
	switch r.Op {
	case OpSubscribe, OpUnsubscribe, OpPresence:
	case OpPublish:
		if len(r.Data) == 0 {
			return r, Errorf(CodeBadRequest, "publish without data")
		}
	case OpHistory:
		if r.Limit < 0 || r.Limit > MaxHistoryLimit {
			return r, Errorf(CodeBadRequest, "history limit must be 0..%d", MaxHistoryLimit)
		}
	case OpPing:
		return r, nil
	case "":
		return r, Errorf(CodeBadRequest, "request without an op")
	default:
		return r, Errorf(CodeUnknownOp, "unknown op %q", r.Op)
	}
	if err := ValidChannel(r.Channel); err != nil {
		return r, err
	}
	return r, nil
}

// ValidChannel checks a channel name: 1 to 255 bytes of letters, digits and _ - : . @ /.
func ValidChannel(ch string) *Error {
	if ch == "" {
		return Errorf(CodeBadChannel, "channel required")
	}
	if len(ch) > MaxChannelLen {
		return Errorf(CodeBadChannel, "channel longer than %d bytes", MaxChannelLen)
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '-' || c == ':' || c == '.' || c == '@' || c == '/' {
			continue
		}
		return Errorf(CodeBadChannel, "channel %q: byte %q not allowed (letters, digits and _-:.@/ only)", ch, c)
	}
	return nil
}

// Reply encodes a successful reply.
func Reply(id uint64, result any) []byte {
	b, err := json.Marshal(struct {
		ID     uint64 `json:"id"`
		Result any    `json:"result"`
	}{id, result})
	if err != nil {
		return ErrorReply(id, Errorf(CodeInternal, "encoding reply: %v", err))
	}
	return b
}

// ErrorReply encodes an error reply; id 0 means the frame could not be parsed far enough.
func ErrorReply(id uint64, e *Error) []byte {
	b, _ := json.Marshal(struct {
		ID    uint64 `json:"id,omitempty"`
		Error *Error `json:"error"`
	}{id, e})
	return b
}

// PubPush encodes a publication push once, for every subscriber of the channel. The channel is
// valid (ValidChannel), so it needs no escaping; data is already JSON.
func PubPush(channel, epoch string, p Publication) []byte {
	b := make([]byte, 0, 64+len(channel)+len(epoch)+len(p.Data))
	b = append(b, `{"push":"pub","channel":"`...)
	b = append(b, channel...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendQuote(b, epoch) // epochs are base64url: no JSON-specific escapes
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, p.Data...)
	return append(b, '}')
}

// PresencePush encodes a join or leave push.
func PresencePush(kind, channel string, c ClientInfo) []byte {
	if kind != "join" && kind != "leave" {
		panic(fmt.Sprintf("protocol: presence push %q", kind))
	}
	b, _ := json.Marshal(struct {
		Push    string     `json:"push"`
		Channel string     `json:"channel"`
		Client  ClientInfo `json:"client"`
	}{kind, channel, c})
	return b
}

// PingPush is the server's application-level ping: browsers cannot see WebSocket ping frames, so
// this is how a client notices a dead link. Clients need not answer.
var PingPush = []byte(`{"push":"ping"}`)
