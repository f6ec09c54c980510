package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/broker"
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
	OpConnect     Op = "connect" // identify: the token (or, without one, the upgrade's cookies and headers)
	OpRefresh     Op = "refresh" // extend a connected identity with a fresh token
	OpRPC         Op = "rpc"     // call a method of the application's backend
)

// Limits of the protocol itself; a server may set lower ones.
const (
	MaxChannelLen    = 255
	MaxHistoryLimit  = 1000
	MaxPresenceLimit = 1000
	MaxEpochLen      = 64
	MaxTokenLen      = 8 << 10 // a connect, refresh or subscribe token
	MaxMethodLen     = 64      // an rpc method: letters, digits and _ - : . /
)

// Defaults of a request's optional fields.
const (
	DefaultHistoryLimit  = 100
	DefaultPresenceLimit = 100
)

// Position, Publication and HistoryResult are the broker's own values: their JSON form is the
// wire form, so a reply carries them without a copy.
type (
	Position      = broker.Position
	Publication   = broker.Publication
	HistoryResult = broker.HistoryResult
)

// Request is a parsed client request.
type Request struct {
	ID      uint64          `json:"id"`
	Op      Op              `json:"op"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`     // publish
	Since   *Position       `json:"since,omitempty"`    // subscribe (recover), history
	Limit   int             `json:"limit,omitempty"`    // history, presence
	Events  bool            `json:"presence,omitempty"` // subscribe: also push join and leave
	After   string          `json:"after,omitempty"`    // presence: continue after this conn
	Token   string          `json:"token,omitempty"`    // connect, refresh; subscribe: a channel token
	Method  string          `json:"method,omitempty"`   // rpc
}

// ClientInfo identifies a subscriber in presence and join/leave pushes.
type ClientInfo struct {
	Conn string          `json:"conn"`
	User string          `json:"user,omitempty"`
	Info json.RawMessage `json:"info,omitempty"` // what the connection's identity shows others (a name, an avatar)
}

// ConnectResult answers a connect: who the connection now is, how long its token lasts, and the
// channels it was subscribed to from the server side (its token's or the backend's), with their
// tops as a subscribe reply gives them.
type ConnectResult struct {
	Client     string              `json:"client"`
	User       string              `json:"user,omitempty"`
	ExpiresIn  int64               `json:"expires_in,omitempty"` // seconds until the token expires; 0: never
	Subscribed []SubscribedChannel `json:"subscribed,omitempty"`
}

// SubscribedChannel is a server-side subscription: in a connect reply, and as a "subscribe" push
// when the server subscribes a live connection.
type SubscribedChannel struct {
	Channel string `json:"channel"`
	Epoch   string `json:"epoch"`
	Offset  uint64 `json:"offset"`
}

// RefreshResult answers a refresh.
type RefreshResult struct {
	ExpiresIn int64 `json:"expires_in,omitempty"`
}

// SubscribeResult answers a subscribe. Epoch and Offset are the channel's top: live pushes start
// after it. Recovered says whether every publication after the requested position can be had:
// those in Publications and, when More is set, the rest up to Offset through history requests
// from the last one given. If not recovered, the client missed some and must resync.
type SubscribeResult struct {
	Epoch        string        `json:"epoch"`
	Offset       uint64        `json:"offset"`
	Recovered    bool          `json:"recovered"`
	More         bool          `json:"more,omitempty"`
	Publications []Publication `json:"publications,omitempty"`
}

// PublishResult answers a publish with the publication's position.
type PublishResult = Position

// PresenceResult answers a presence request: one page of the channel's subscribers on this node,
// ordered by conn. Next, when set, is the After of the following page.
type PresenceResult struct {
	Total   int          `json:"total"`
	Clients []ClientInfo `json:"clients"`
	Next    string       `json:"next,omitempty"`
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
	case OpSubscribe, OpUnsubscribe:
	case OpPresence:
		if r.Limit < 0 || r.Limit > MaxPresenceLimit {
			return r, Errorf(CodeBadRequest, "presence limit must be 0..%d", MaxPresenceLimit)
		}
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
	case OpConnect, OpRefresh:
		if len(r.Token) > MaxTokenLen {
			return r, Errorf(CodeBadRequest, "token longer than %d bytes", MaxTokenLen)
		}
		if r.Op == OpRefresh && r.Token == "" {
			return r, Errorf(CodeBadRequest, "refresh without a token")
		}
		return r, nil
	case OpRPC:
		if err := validMethod(r.Method); err != nil {
			return r, err
		}
		return r, nil
	case "":
		return r, Errorf(CodeBadRequest, "request without an op")
	default:
		return r, Errorf(CodeUnknownOp, "unknown op %q", truncate(string(r.Op), 32))
	}
	if err := ValidChannel(r.Channel); err != nil {
		return r, err
	}
	if len(r.Token) > MaxTokenLen {
		return r, Errorf(CodeBadRequest, "token longer than %d bytes", MaxTokenLen)
	}
	if r.Since != nil && len(r.Since.Epoch) > MaxEpochLen {
		return r, Errorf(CodeBadRequest, "since.epoch longer than %d bytes", MaxEpochLen)
	}
	return r, nil
}

// truncate cuts s to at most n bytes, for error messages that quote a client's input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// validMethod checks an rpc method name: 1 to MaxMethodLen bytes of letters, digits and _ - : . /.
func validMethod(m string) *Error {
	if m == "" || len(m) > MaxMethodLen {
		return Errorf(CodeBadRequest, "rpc method must be 1 to %d bytes", MaxMethodLen)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == ':' || c == '.' || c == '/' {
			continue
		}
		return Errorf(CodeBadRequest, "rpc method: byte %q not allowed (letters, digits and _-:./ only)", c)
	}
	return nil
}

// ValidChannel checks a channel name: 1 to 255 bytes of letters, digits and _ - : . @ / #. A
// name that starts with # or contains one is a user channel ("#alice", "chat:#alice,bob"):
// who may use it is the gateway's decision.
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
			c == '_' || c == '-' || c == ':' || c == '.' || c == '@' || c == '/' || c == '#' || c == ',' {
			continue
		}
		return Errorf(CodeBadChannel, "channel %q: byte %q not allowed (letters, digits and _-:.@/#, only)", ch, c)
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

// PubPush encodes a publication push once, for every subscriber of its channel. The channel is
// valid (ValidChannel), so it needs no escaping; data is already JSON.
func PubPush(p Publication) []byte {
	b := make([]byte, 0, 64+len(p.Channel)+len(p.Epoch)+len(p.Data))
	b = append(b, `{"push":"pub","channel":"`...)
	b = append(b, p.Channel...)
	b = append(b, `","epoch":`...)
	b = appendString(b, p.Epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, p.Data...)
	return append(b, '}')
}

// PubSize bounds the bytes p takes inside a reply's publications list; replies are paged by it
// before anything is encoded.
func PubSize(p Publication) int { return len(p.Data) + 34 }

// ReplyOverhead bounds the bytes of a subscribe or history reply besides its publications.
const ReplyOverhead = 160 + MaxEpochLen

// HistoryReply encodes a history reply. The publications' data is already JSON and is copied as
// it is, not re-validated: encoding costs a copy of the page, no more.
func HistoryReply(id uint64, r HistoryResult) []byte {
	b := replyStart(id, r.Position, sizePubs(r.Publications))
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, r.Complete)
	if r.More {
		b = append(b, `,"more":true`...)
	}
	b = append(b, `,"publications":`...)
	b = appendPubs(b, r.Publications)
	return append(b, "}}"...)
}

// SubscribeReply encodes a subscribe reply, as HistoryReply does.
func SubscribeReply(id uint64, r SubscribeResult) []byte {
	b := replyStart(id, Position{Epoch: r.Epoch, Offset: r.Offset}, sizePubs(r.Publications))
	b = append(b, `,"recovered":`...)
	b = strconv.AppendBool(b, r.Recovered)
	if r.More {
		b = append(b, `,"more":true`...)
	}
	if len(r.Publications) > 0 {
		b = append(b, `,"publications":`...)
		b = appendPubs(b, r.Publications)
	}
	return append(b, "}}"...)
}

func replyStart(id uint64, top Position, extra int) []byte {
	b := make([]byte, 0, ReplyOverhead+len(top.Epoch)+extra)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"result":{"epoch":`...)
	b = appendString(b, top.Epoch)
	b = append(b, `,"offset":`...)
	return strconv.AppendUint(b, top.Offset, 10)
}

func sizePubs(ps []Publication) int {
	n := 2
	for _, p := range ps {
		n += PubSize(p)
	}
	return n
}

func appendPubs(b []byte, ps []Publication) []byte {
	b = append(b, '[')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"offset":`...)
		b = strconv.AppendUint(b, p.Offset, 10)
		b = append(b, `,"data":`...)
		b = append(b, p.Data...)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendString appends s as a JSON string. Epochs are base64url from the brokers: the common case
// needs no escaping and no allocation.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// PresenceChangePush encodes the presence changes of a channel gathered over one interval: the
// connections that joined and those that left (either list may be empty, not both).
func PresenceChangePush(channel string, joined, left []ClientInfo) []byte {
	if joined == nil {
		joined = []ClientInfo{}
	}
	if left == nil {
		left = []ClientInfo{}
	}
	b, _ := json.Marshal(struct {
		Push    string       `json:"push"`
		Channel string       `json:"channel"`
		Join    []ClientInfo `json:"join"`
		Leave   []ClientInfo `json:"leave"`
	}{"presence", channel, joined, left})
	return b
}

// GapPush tells a subscriber that publications of channel up to offset could not be queued to it
// (its slow-consumer policy dropped them): it fetches what it misses with history, from the last
// one it has.
func GapPush(channel, epoch string, offset uint64) []byte {
	b := make([]byte, 0, 64+len(channel)+len(epoch))
	b = append(b, `{"push":"gap","channel":"`...)
	b = append(b, channel...)
	b = append(b, `","epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	return append(b, '}')
}

// PingPush is the server's application-level ping: browsers cannot see WebSocket ping frames, so
// this is how a client notices a dead link. Clients need not answer.
var PingPush = []byte(`{"push":"ping"}`)
