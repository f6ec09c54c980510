package echoserver

import (
	"io"
	"log/slog"
	"time"

	"github.com/wsgate/wsgate"
)

// Wsgate is a wsgate echo server: a HandlerFunc that Sends every message back unchanged. Its Config
// is the default except ReadLimit (ReadLimit, as the others) and AllowedOrigins ("*", as the
// others check none); heartbeats stay on at their defaults, a cost wsgate really pays.
type Wsgate struct{ *wsgate.Server }

// NewWsgate returns a wsgate echo server with the default runtime (idle connections parked).
func NewWsgate() (*Wsgate, error) { return newWsgate(Options{}, 0, nil) }

// NewWsgateWith returns a wsgate echo server with the default runtime, o's heartbeat, and the
// Config changes edit makes (nil: none), for the variants a benchmark compares (a handshake rate,
// say).
func NewWsgateWith(o Options, edit func(*wsgate.Config)) (*Wsgate, error) {
	return newWsgate(o, 0, edit)
}

// newWsgate returns a wsgate echo server with o's heartbeat and Config.ParkAfter parkAfter (0: the
// default; negative: a reader goroutine per connection, the runtime before parking), then edit.
func newWsgate(o Options, parkAfter time.Duration, edit func(*wsgate.Config)) (*Wsgate, error) {
	echo := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) { _ = c.Send(m.Type, m.Data) })
	cfg := &wsgate.Config{
		ReadLimit:      ReadLimit,
		AllowedOrigins: []string{"*"},
		PingInterval:   o.PingInterval,
		ParkAfter:      parkAfter,
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
