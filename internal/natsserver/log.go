package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// logAdapter writes nats-server's log through slog. nats-server calls Fatalf where it would exit
// the process (a port in use, a store it cannot create); the adapter keeps the first such error
// for Start and WaitJetStream to return instead.
type logAdapter struct {
	log     *slog.Logger
	once    sync.Once
	fatalCh chan struct{} // closed at the first Fatalf
	mu      sync.Mutex
	err     error
}

func newLogAdapter(l *slog.Logger) *logAdapter {
	if l == nil {
		l = slog.Default()
	}
	return &logAdapter{log: l.With("component", "nats"), fatalCh: make(chan struct{})}
}

func (a *logAdapter) logf(level slog.Level, format string, v []any) {
	if a.log.Enabled(context.Background(), level) {
		a.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (a *logAdapter) Noticef(format string, v ...any) { a.logf(slog.LevelDebug, format, v) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.logf(slog.LevelWarn, format, v) }
func (a *logAdapter) Errorf(format string, v ...any)  { a.logf(slog.LevelError, format, v) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.logf(slog.LevelDebug-4, format, v) }
func (a *logAdapter) Tracef(format string, v ...any)  { a.logf(slog.LevelDebug-8, format, v) }

func (a *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.log.Error(msg)
	a.mu.Lock()
	if a.err == nil {
		a.err = errors.New("nats server: " + msg)
	}
	a.mu.Unlock()
	a.once.Do(func() { close(a.fatalCh) })
}

// fatal is the first error logged as fatal, nil if none.
func (a *logAdapter) fatal() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
