//go:build !linux

package wsgate

import "errors"

// parkSupported: without epoll, every connection keeps its reader goroutine (docs/RUNTIME.md).
const parkSupported = false

// poller is empty where connections do not park.
type poller struct{}

var errPollerStopped = errors.New("wsgate: connections do not park on this system")

func (s *Server) pollerStopped() bool { return true }
func (s *Server) watch(c *Conn) error { return errPollerStopped }
func (s *Server) unwatch(c *Conn)     {}
func (s *Server) stopPoller()         {}
