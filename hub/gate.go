package hub

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// The gateway's seam. The hub never reads a token or a configuration file: it asks the hooks of
// Options (Connect, Refresh, Authorize, Publish, RPC, Channel) and keeps what they answer. The
// binary's gateway (package gateway) implements them from JWT, namespaces and backend calls.

// MaxInfoLen bounds Identity.Info, which every presence page and join push carries.
const MaxInfoLen = 1024

// Identity is who is behind a connection, as the gateway established it.
type Identity struct {
	User string // "" for anonymous
	// Info is JSON that others see beside the user in presence and join/leave pushes (a name, an
	// avatar); at most MaxInfoLen bytes.
	Info json.RawMessage
	// ExpiresAt is when the identity lapses (the token's exp); zero never. After it the client
	// gets a "refresh" push, and is closed with protocol.CloseTokenExpired when it has not
	// refreshed within Options.RefreshGrace.
	ExpiresAt time.Time
	// Channels are subscribed from the server side when the connection connects, without
	// Authorize: the connect reply lists them with their tops.
	Channels []string
}

// ChannelOptions are what a channel's namespace allows, from Options.Channel. The zero value
// allows everything, as a hub without a gateway does.
type ChannelOptions struct {
	NoPresence  bool // presence requests are refused (112), and no join/leave either
	NoJoinLeave bool // subscribe asking for join/leave pushes is refused (112)
	NoHistory   bool // history requests are refused (112)
	NoRecovery  bool // a subscribe with since is answered recovered: false, without replay
}

// Disconnect, returned by a hook, closes the connection with Code and Reason after the reply
// (an error reply with protocol.CodeForbidden, or the Err it wraps when that is a
// *protocol.Error).
type Disconnect struct {
	Code   wsgate.CloseCode
	Reason string
	Err    *protocol.Error // the reply's error; nil: CodeForbidden with Reason
}

func (d *Disconnect) Error() string {
	return "hub: disconnect " + strconv.Itoa(int(d.Code)) + ": " + d.Reason
}

// ErrNotConnected is wrapped by the errors of the server-side methods given a connection that is
// not a connected wsgate.v1 connection of this hub.
var ErrNotConnected = errors.New("hub: not a connected wsgate.v1 connection")
