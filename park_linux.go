package wsgate

import (
	"sync"
	"syscall"
)

// parkSupported: Linux has epoll, so plain TCP connections park (park.go).
const parkSupported = true

// poller is the Server's epoll instance and the goroutine waiting on it: one for all the parked
// connections, started with the first, stopped when the Server has shut down (stopPoller).
//
// Each parked socket is registered EPOLLIN|EPOLLRDHUP|EPOLLONESHOT (errors and hang-ups are always
// reported) with the connection's ID as its event data: IDs are never reused within a Server, so
// an event that comes late, for a socket since closed and its descriptor number reused, finds no
// parked connection of that ID and wakes nothing. One shot: a socket that fired stays registered
// but silent until it parks again (EPOLL_CTL_MOD), so a busy connection, which does not park,
// costs no epoll call per message. A closed socket leaves the epoll set by itself; a connection
// that ends with its socket open is taken out (unwatch) before the socket is closed and its
// descriptor can be reused.
type poller struct {
	mu      sync.RWMutex // read-held around every epoll_ctl, so that epfd is not closed under it
	started bool         // epfd and the pipe are open
	epfd    int
	wakeR   int // the read end of the pipe that stops the loop, in the epoll set as ID 0
	wakeW   int
	stopped bool
	done    chan struct{}
}

// errPollerStopped: the Server has shut down, or epoll cannot be had; connections read on.
var errPollerStopped = syscall.ESHUTDOWN

func (s *Server) pollerStopped() bool {
	p := &s.poll
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stopped
}

// startPollerLocked makes the epoll instance and starts the poller goroutine; p.mu is held.
func (s *Server) startPollerLocked() error {
	p := &s.poll
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // data 0: no connection has ID 0
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(pipe[0])
		_ = syscall.Close(pipe[1])
		return err
	}
	p.started, p.epfd, p.wakeR, p.wakeW, p.done = true, epfd, pipe[0], pipe[1], make(chan struct{})
	s.goroutines.Add(1)
	go func() { // owner: the Server; stopped by stopPoller
		defer s.goroutines.Done()
		defer close(p.done)
		s.pollLoop(epfd)
	}()
	return nil
}

// pollLoop waits for parked sockets to become readable and starts their readers (unpark).
func (s *Server) pollLoop(epfd int) {
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(epfd, events[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// Never seen: epoll_wait fails only on a bad descriptor or buffer. Parking stops, and
			// every parked connection gets its reader back.
			s.cfg.Logger.Error("wsgate: epoll_wait failed; connections no longer park", "err", err)
			s.poll.mu.Lock()
			s.poll.stopped = true
			s.poll.mu.Unlock()
			s.Range(func(c *Conn) bool { c.unpark(); return true })
			return
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == 0 {
				return // stopPoller
			}
			if c := s.Conn(id); c != nil {
				c.unpark()
			}
		}
	}
}

// watch registers c's socket with the poller, one shot, starting the poller if it is the first.
func (s *Server) watch(c *Conn) error {
	p := &s.poll
	p.mu.RLock()
	if !p.started && !p.stopped {
		p.mu.RUnlock()
		p.mu.Lock()
		var err error
		if !p.started && !p.stopped {
			err = s.startPollerLocked()
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
		p.mu.RLock()
	}
	defer p.mu.RUnlock()
	if p.stopped {
		return errPollerStopped
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(uint32(c.id)), Pad: int32(uint32(c.id >> 32))}
	var cerr error
	// Control holds the descriptor: it cannot be closed, and its number reused, meanwhile.
	err := c.wire.raw.Control(func(fd uintptr) {
		op := syscall.EPOLL_CTL_ADD
		if c.watched.Load() {
			op = syscall.EPOLL_CTL_MOD
		}
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
		switch {
		case cerr == syscall.EEXIST:
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		case cerr == syscall.ENOENT:
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
		if cerr == nil {
			c.watched.Store(true)
		}
	})
	if err != nil {
		return err
	}
	return cerr
}

// unwatch takes c's socket out of the epoll set, if it was ever in it, before the socket is closed.
func (s *Server) unwatch(c *Conn) {
	if !c.watched.Swap(false) {
		return
	}
	p := &s.poll
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.started {
		return
	}
	_ = c.wire.raw.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// stopPoller stops the poller goroutine and closes the epoll instance; connections that would park
// after it read on instead. Called once every connection has ended (Server.wait).
func (s *Server) stopPoller() {
	p := &s.poll
	p.mu.Lock()
	running := !p.stopped && p.started
	p.stopped = true
	p.mu.Unlock()
	if !running {
		return
	}
	_, _ = syscall.Write(p.wakeW, []byte{1})
	<-p.done
	p.mu.Lock()
	_ = syscall.Close(p.epfd)
	_ = syscall.Close(p.wakeR)
	_ = syscall.Close(p.wakeW)
	p.started = false
	p.mu.Unlock()
}
