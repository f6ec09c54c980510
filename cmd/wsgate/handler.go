package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// echoDone is the seed's business logic: answer "<msg> done" in the frame type received.
var echoDone = wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
	reply := make([]byte, 0, len(m.Data)+len(echoSuffix))
	// An error means the connection is closing, or the slow-consumer policy applied (and counted the
	// drop, or closed the connection): wsgate has dealt with it. A reply too large to queue cannot
	// happen: checkEchoFits refuses such a configuration.
	_ = c.Send(m.Type, append(append(reply, m.Data...), echoSuffix...))
})

const echoSuffix = " done"

// checkEchoFits makes sure the reply to the largest message a peer may send fits the send queue;
// otherwise Send would refuse it with ErrMessageTooLarge and the peer would never get an answer.
func checkEchoFits(c *wsgate.Config) error {
	readLimit := cmp.Or(c.ReadLimit, wsgate.DefaultReadLimit)
	queueBytes := cmp.Or(c.SendQueueBytes, wsgate.DefaultSendQueueBytes)
	if readLimit+len(echoSuffix) > queueBytes {
		return fmt.Errorf("-send-queue-bytes %d cannot hold the reply to a message of -read-limit %d bytes (%d with %q); raise it or lower -read-limit",
			queueBytes, readLimit, readLimit+len(echoSuffix), echoSuffix)
	}
	return nil
}

// pushOverhead bounds what a publication push adds to its data: the channel name (255 bytes at
// most), the epoch (64) and the JSON around them.
const pushOverhead = protocol.MaxChannelLen + protocol.MaxEpochLen + 64

// checkPublicationsFit makes sure the push of the largest publication fits the send queue;
// otherwise no subscriber could ever receive it.
func checkPublicationsFit(c *wsgate.Config, maxData int) error {
	queueBytes := cmp.Or(c.SendQueueBytes, wsgate.DefaultSendQueueBytes)
	if maxData+pushOverhead > queueBytes {
		return fmt.Errorf("-send-queue-bytes %d cannot hold the push of a publication of -max-data-size %d bytes (%d with its channel and position); raise it or lower -max-data-size",
			queueBytes, maxData, maxData+pushOverhead)
	}
	return nil
}

// logConns wraps h to log each connection's open and close at debug level: id, remote address,
// close code and reason, never payloads.
func logConns(h wsgate.Handler, log *slog.Logger) wsgate.Handler {
	return connLogger{Handler: h, log: log}
}

type connLogger struct {
	wsgate.Handler
	log *slog.Logger
}

func (l connLogger) OnOpen(c *wsgate.Conn) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("connection open", "conn", c.ID(), "remote", c.RemoteAddr().String(),
			"subprotocol", c.Subprotocol())
	}
	l.Handler.OnOpen(c)
}

func (l connLogger) OnClose(c *wsgate.Conn, err error) {
	l.Handler.OnClose(c, err)
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"conn", c.ID(), "remote", c.RemoteAddr().String()}
	var ce *wsgate.CloseError
	if errors.As(err, &ce) {
		attrs = append(attrs, "code", int(ce.Code), "reason", ce.Reason, "by_peer", ce.Remote)
		if ce.Err != nil {
			attrs = append(attrs, "cause", ce.Err.Error())
		}
	} else {
		attrs = append(attrs, "err", err)
	}
	l.log.Debug("connection closed", attrs...)
}
