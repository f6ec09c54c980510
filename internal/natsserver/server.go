// Package natsserver runs the NATS server that `wsgate serve -cluster-listen` embeds: JetStream on
// file storage in the node's data directory, a route listener clustering it with its peers, and
// in-process client connections for the node's broker. Three wsgate processes that name each
// other as peers are then a JetStream cluster with nothing else to install.
//
// The node's own broker connects in process (see Server.ConnectOptions). The server still has a
// client listener, on a random loopback port unless Options.ClientListen says otherwise:
// nats-server starts routing only once its client listener is up (with DontListen, a cluster
// never forms), and the port is useful to an operator with the nats CLI on the host.
package natsserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// Defaults of Options.
const (
	DefaultClusterName  = "wsgate"
	DefaultReadyTimeout = 10 * time.Second
	DefaultClientListen = "127.0.0.1:0"
)

// Options configure the embedded server. The zero value is a single node without listeners;
// only DataDir is required.
type Options struct {
	// Name is the server's name in the cluster, unique among its peers (wsgate's node name).
	// Default: the host name.
	Name string
	// DataDir holds the JetStream store. It is created if missing (mode 0700) and locked while the
	// server runs: two nodes never share one. Required.
	DataDir string
	// ClusterName names the cluster; every peer must use the same. Default "wsgate".
	ClusterName string
	// ClusterListen is the host:port of the route listener that peers connect to (port 0: a
	// random one, see Server.ClusterAddr). Empty: a single node, no cluster. A cluster needs
	// Peers.
	ClusterListen string
	// Peers are the other nodes' route addresses, host:port. This node's own address may be
	// among them: a server recognises itself.
	Peers []string
	// ClientListen is the host:port of the client listener, for operators and the nats CLI (port
	// 0: a random one, see Server.ClientURL). Default "127.0.0.1:0": loopback only.
	ClientListen string
	// ReadyTimeout bounds the wait for the listeners in Start. Default 10 s.
	ReadyTimeout time.Duration
	// Logger receives the server's log, at the levels of slog (its notices are Debug: wsgate logs
	// what an operator needs to know). Default: slog.Default().
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns    *server.Server
	log   *logAdapter
	lock  *os.File // the DataDir lock, released at Shutdown
	opts  Options
	ready time.Duration
}

// Start validates o, starts the server and waits until its listeners are up. It does not wait
// for JetStream to have a leader: see WaitJetStream.
func Start(o *Options) (*Server, error) {
	opts, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	la := newLogAdapter(o.Logger)
	ns, err := server.NewServer(opts)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("nats server: %w", err)
	}
	// Debug and trace only when they would be written: with the flags on, nats-server formats
	// its debug lines (raft's, per replicated entry among them) whatever the logger then does.
	ctx := context.Background()
	ns.SetLoggerV2(la, la.log.Enabled(ctx, slog.LevelDebug-4), la.log.Enabled(ctx, slog.LevelDebug-8), false)
	s := &Server{ns: ns, log: la, lock: lock, opts: *o, ready: o.ReadyTimeout}
	if s.ready == 0 {
		s.ready = DefaultReadyTimeout
	}
	ns.Start()
	if err := s.waitListening(); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// serverOptions maps o onto nats-server's options, refusing what is wrong in o itself.
func (o *Options) serverOptions() (*server.Options, error) {
	if o.DataDir == "" {
		return nil, errors.New("nats server: a data directory is required for JetStream")
	}
	name := o.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("nats server: no name given and no host name: %w", err)
		}
		name = h
	}
	opts := &server.Options{
		ServerName:             name,
		JetStream:              true,
		StoreDir:               o.DataDir, // nats-server keeps its files under DataDir/jetstream
		DisableJetStreamBanner: true,
		NoSigs:                 true,    // the process's signals are wsgate's
		MaxPayload:             8 << 20, // nats-server's cap; wsgate's own bounds are far below
	}
	host, port, err := splitHostPort("client listen address", cmp.Or(o.ClientListen, DefaultClientListen))
	if err != nil {
		return nil, err
	}
	opts.Host, opts.Port = host, port
	if o.ClusterListen == "" {
		if len(o.Peers) > 0 {
			return nil, errors.New("nats server: peers given without a cluster listen address")
		}
		return opts, nil
	}
	if len(o.Peers) == 0 { // JetStream refuses a cluster without routes
		return nil, errors.New("nats server: a cluster needs peers: the route addresses of the other nodes")
	}
	host, port, err = splitHostPort("cluster listen address", o.ClusterListen)
	if err != nil {
		return nil, err
	}
	opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: host, Port: port}
	if opts.Cluster.Name == "" {
		opts.Cluster.Name = DefaultClusterName
	}
	for _, p := range o.Peers {
		if _, _, err := splitHostPort("peer route address", p); err != nil {
			return nil, err
		}
		u, err := url.Parse("nats-route://" + p)
		if err != nil {
			return nil, fmt.Errorf("nats server: peer route address %q: %w", p, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
}

// splitHostPort parses a host:port; port 0 becomes nats-server's random port.
func splitHostPort(what, hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("nats server: %s %q: want host:port: %w", what, hp, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("nats server: %s %q: port %q is not a number from 0 to 65535", what, hp, ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// waitListening waits for the listeners, failing early on an error the server logged as fatal
// (a port in use, a store it cannot write): nats-server would exit the process there.
func (s *Server) waitListening() error {
	for deadline := time.Now().Add(s.ready); ; {
		ok := s.ns.ReadyForConnections(50 * time.Millisecond)
		if err := s.log.fatal(); err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats server: not ready for connections within %v", s.ready)
		}
	}
}

// WaitJetStream waits until JetStream can serve requests: for a cluster, until a meta leader is
// known, which needs a quorum of the peers. It returns ctx's error, with what is missing, if ctx
// ends first.
func (s *Server) WaitJetStream(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if err := s.log.fatal(); err != nil {
			return err
		}
		if s.jetStreamReady() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nats server: JetStream has no leader yet (cluster %q, %d peers known): %w",
				s.opts.ClusterName, s.knownPeers(), context.Cause(ctx))
		case <-s.log.fatalCh:
		case <-t.C:
		}
	}
}

func (s *Server) jetStreamReady() bool {
	if !s.ns.JetStreamEnabled() {
		return false
	}
	if !s.ns.JetStreamIsClustered() {
		return true
	}
	info, err := s.ns.Jsz(nil)
	return err == nil && info.Meta != nil && info.Meta.Leader != "" && s.ns.JetStreamIsCurrent()
}

// knownPeers is the size of the JetStream cluster as this server knows it, 0 if unknown.
func (s *Server) knownPeers() int {
	info, err := s.ns.Jsz(nil)
	if err != nil || info.Meta == nil {
		return 0
	}
	return info.Meta.Size
}

// Leader is the name of the JetStream meta leader, "" if none is known.
func (s *Server) Leader() string {
	info, err := s.ns.Jsz(nil)
	if err != nil || info.Meta == nil {
		return ""
	}
	return info.Meta.Leader
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// ClusterAddr is the route listener's address, nil without a cluster.
func (s *Server) ClusterAddr() net.Addr {
	if a := s.ns.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// ClientURL is the nats:// URL of the client listener.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// InProcessConn opens a client connection inside the process; it makes *Server a
// nats.go InProcessConnProvider (nats.InProcessServer).
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// Shutdown stops the server: it closes its connections and listeners and flushes the store. It
// returns ctx's error if that takes longer than ctx allows; the server then finishes in the
// background.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // owner: Shutdown; ends when the server has stopped
		s.shutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nats server shutdown: %w", ctx.Err())
	}
}

func (s *Server) shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.lock.Close()
}

// ConnectOptions are the nats.go options by which a client connects to s in process.
func (s *Server) ConnectOptions() []natsgo.Option {
	return []natsgo.Option{natsgo.InProcessServer(s)}
}

// WaitFirstStream is for the nodes of a new cluster, started together, that are about to
// create the same stream: JetStream may leave a creation, and the updates that race it, without
// an answer (nats-server 2.15.2), and it places replicas only on peers it has heard from. So
// the meta leader waits until it sees peers servers current, itself included, and the others
// until the stream has a leader (they then find it made), or until ctx ends, which returns
// ctx's error.
func (s *Server) WaitFirstStream(ctx context.Context, peers int) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := s.ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
		if err == nil && info.Meta != nil {
			if streamLed(info) || s.ns.JetStreamIsLeader() && currentPeers(info.Meta) >= peers {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// streamLed reports whether a stream on this server has a leader.
func streamLed(info *server.JSInfo) bool {
	for _, a := range info.AccountDetails {
		for _, st := range a.Streams {
			if st.Cluster != nil && st.Cluster.Leader != "" {
				return true
			}
		}
	}
	return false
}

// currentPeers counts the servers that the meta leader sees current, itself included.
func currentPeers(m *server.MetaClusterInfo) int {
	n := 1
	for _, p := range m.Replicas {
		if !p.Offline && p.Current {
			n++
		}
	}
	return n
}
