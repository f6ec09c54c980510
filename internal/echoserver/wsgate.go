package echoserver

import (
	"io"
	"log/slog"

	"github.com/wsgate/wsgate"
)

// Wsgate is a wsgate echo server: a HandlerFunc that Sends every message back unchanged. Its Config
// is the default except ReadLimit (ReadLimit, as the others) and AllowedOrigins ("*", as the
// others check none); heartbeats stay on at their defaults, a cost wsgate really pays.
type Wsgate struct{ *wsgate.Server }

// NewWsgate returns a wsgate echo server.
func NewWsgate() (*Wsgate, error) { return NewWsgateWith(nil) }

// NewWsgateWith returns a wsgate echo server whose Config edit changes (nil: none), for the
// variants a benchmark compares (a handshake rate, say).
func NewWsgateWith(edit func(*wsgate.Config)) (*Wsgate, error) {
	echo := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) { _ = c.Send(m.Type, m.Data) })
	cfg := &wsgate.Config{
		ReadLimit:      ReadLimit,
		AllowedOrigins: []string{"*"},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(cfg)
	}
	s, err := wsgate.NewServer(echo, cfg)
	if err != nil {
		return nil, err
	}
	return &Wsgate{s}, nil
}
