package wsgate

import (
	"errors"
	"strconv"
	"time"
)

// Sentinel errors returned by Conn and Server methods. They are stable: match them with errors.Is.
var (
	// ErrClosed is returned by Send and Close-related calls on a connection that is closing or closed.
	ErrClosed = errors.New("wsgate: connection closed")
	// ErrQueueFull is returned by Send when the connection's send queue is full. What happens to the
	// connection then depends on Config.SlowConsumer.
	ErrQueueFull = errors.New("wsgate: send queue full")
	// ErrMessageTooLarge is returned by Send for a message bigger than Config.SendQueueBytes: it could
	// never be queued.
	ErrMessageTooLarge = errors.New("wsgate: message larger than the send queue")
	// ErrInvalidUTF8 is returned by Send for a Text message that is not valid UTF-8 (RFC 6455 §5.6).
	ErrInvalidUTF8 = errors.New("wsgate: text message is not valid UTF-8")
	// ErrInvalidMessageType is returned by Send for a type other than Text or Binary.
	ErrInvalidMessageType = errors.New("wsgate: invalid message type")
	// ErrInvalidCloseCode is returned by Close for a code an endpoint may not send (RFC 6455 §7.4).
	ErrInvalidCloseCode = errors.New("wsgate: invalid close code")
	// ErrServerClosed is returned by Shutdown and Close when the server was already shut down.
	ErrServerClosed = errors.New("wsgate: server closed")
	// ErrPongTimeout is wrapped by the CloseError of a connection whose peer stopped answering pings.
	ErrPongTimeout = errors.New("wsgate: pong timeout")
	// ErrCloseTimeout is wrapped by the CloseError of a connection whose peer did not answer our
	// close frame within Config.CloseTimeout.
	ErrCloseTimeout = errors.New("wsgate: close handshake timeout")
	// ErrWriteTimeout is wrapped by the CloseError of a connection whose writes did not finish within
	// Config.WriteTimeout.
	ErrWriteTimeout = errors.New("wsgate: write timeout")
	// ErrMessageTimeout is wrapped by the CloseError of a connection whose peer took longer than
	// Config.MessageTimeout to send a message.
	ErrMessageTimeout = errors.New("wsgate: message timeout")
	// ErrSlowConsumer is wrapped by the CloseError of a connection closed by PolicyClose.
	ErrSlowConsumer = errors.New("wsgate: slow consumer")
	// ErrHandlerPanic is wrapped by the CloseError of a connection whose handler panicked.
	ErrHandlerPanic = errors.New("wsgate: handler panic")
)

// RejectError refuses an upgrade from Config.Admit: the client gets Status with Message as
// the body, and a Retry-After header when RetryAfter is positive (whole seconds, rounded up).
type RejectError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (e *RejectError) Error() string {
	return "wsgate: upgrade refused: " + strconv.Itoa(e.Status) + " " + e.Message
}

// CloseError says why a connection ended. Handler.OnClose always receives a *CloseError.
//
// Code is the close code sent or received; for connections that ended without a close frame it is
// CloseAbnormal (1006), which is never sent on the wire. Remote tells whether the peer started the
// close. Err, when set, is the cause on our side (ErrPongTimeout, ErrSlowConsumer, a network error).
type CloseError struct {
	Code   CloseCode
	Reason string
	Remote bool
	Err    error
}

func (e *CloseError) Error() string {
	s := "wsgate: closed with " + strconv.Itoa(int(e.Code))
	if e.Reason != "" {
		s += " " + strconv.Quote(e.Reason)
	}
	if e.Remote {
		s += " by peer"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code carried by err, or -1 if err holds no *CloseError.
func CloseStatus(err error) CloseCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}
