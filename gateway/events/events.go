package events

import (
	"encoding/json"
	"strings"
	"time"
)

// Event types.
const (
	TypeConnect    = "connect"
	TypeDisconnect = "disconnect"
)

// ReasonNodeLost is the reason of a disconnect event another node delivered for a lost node,
// with CodeNodeLost (1006, as for a connection that ended without a close frame).
const (
	ReasonNodeLost = "node lost"
	CodeNodeLost   = 1006
)

// Event is the JSON body of one POST to the backend. A backend decodes it with this type, or
// with its own of the same shape.
type Event struct {
	// ID names the event: node, client and type, so an event delivered twice has the same ID,
	// and the disconnect a surviving node delivers for a lost node has the ID of the one the
	// lost node would have sent. A backend deduplicates on it.
	ID   string `json:"id"`
	Type string `json:"type"` // TypeConnect or TypeDisconnect
	// Node names the node the connection was on.
	Node      string    `json:"node"`
	Client    string    `json:"client"`
	User      string    `json:"user"`
	Transport string    `json:"transport,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Time      time.Time `json:"time"` // when it connected, or when it ended
	// Code and Reason say why a connection ended (disconnect only): its close code and reason.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// DurationMS is how long the connection lasted, in milliseconds (disconnect only).
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// Connected is when the connection connected (disconnect only).
	Connected *time.Time `json:"connected,omitempty"`
	// NodeLost is true on a disconnect another node delivered because the connection's node
	// was lost: Time is when that node found out, the connection ended at some point before.
	NodeLost bool `json:"node_lost,omitempty"`
}

// ConnectInfo describes a connection that connected.
type ConnectInfo struct {
	// Client names the connection, unique on this node (its ID); it keys its held disconnect
	// event. At most MaxClientLen bytes.
	Client string
	// User is who connected ("" for anonymous).
	User string
	// Transport is how ("websocket", "raw", "wsgate.v1": the caller's words).
	Transport string
	// Remote is the peer's address.
	Remote string
	// Time is when it connected. Zero: now.
	Time time.Time
}

// DisconnectInfo describes a connection that ended.
type DisconnectInfo struct {
	// ConnectInfo is the connection as Connected was told of it (its Time gives duration_ms).
	ConnectInfo
	// Code and Reason: why it ended (its close code and reason).
	Code   int
	Reason string
	// At is when it ended. Zero: now.
	At time.Time
}

// MaxClientLen bounds ConnectInfo.Client; a longer one is refused (logged and counted).
const MaxClientLen = 256

// eventID is the ID of client's event of type typ on node.
func eventID(node, client, typ string) string {
	return node + "/" + client + "/" + typ
}

func connectEvent(node string, ci ConnectInfo) Event {
	return Event{
		ID: eventID(node, ci.Client, TypeConnect), Type: TypeConnect, Node: node,
		Client: ci.Client, User: ci.User, Transport: ci.Transport, Remote: ci.Remote, Time: ci.Time,
	}
}

func disconnectEvent(node string, di DisconnectInfo) Event {
	e := connectEvent(node, di.ConnectInfo)
	e.ID, e.Type, e.Time, e.Code, e.Reason = eventID(node, di.Client, TypeDisconnect), TypeDisconnect, di.At, di.Code, di.Reason
	if !di.ConnectInfo.Time.IsZero() {
		connected, d := di.ConnectInfo.Time, di.At.Sub(di.ConnectInfo.Time).Milliseconds()
		e.Connected, e.DurationMS = &connected, &d
	}
	return e
}

// lostEvent is the disconnect event held while the connection lives: delivered by another
// node if this one is lost. Its time and duration are set when it is delivered (stamp).
func lostEvent(node string, ci ConnectInfo) Event {
	e := connectEvent(node, ci)
	connected := ci.Time
	e.ID, e.Type, e.Time, e.Code, e.Reason, e.NodeLost = eventID(node, ci.Client, TypeDisconnect), TypeDisconnect,
		time.Time{}, CodeNodeLost, ReasonNodeLost, true
	e.Connected = &connected
	return e
}

// stamp sets the time and duration of a lost node's disconnect event, which were not known when
// it was held, to now: the time its delivery began. Other events are returned as they are.
func stamp(ev []byte, now time.Time) []byte {
	if !strings.Contains(string(ev), `"node_lost":true`) {
		return ev
	}
	var e Event
	if json.Unmarshal(ev, &e) != nil || !e.NodeLost || !e.Time.IsZero() {
		return ev
	}
	e.Time = now
	if e.Connected != nil {
		d := now.Sub(*e.Connected).Milliseconds()
		e.DurationMS = &d
	}
	out, err := json.Marshal(e)
	if err != nil {
		return ev
	}
	return out
}
