package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/natsserver"
)

// clusterOptions choose the broker: none set is one node in memory; -nats an external NATS
// cluster; -cluster-listen a NATS server embedded in this process, clustered with -cluster-peers.
type clusterOptions struct {
	natsURLs   []string // -nats
	listen     string   // -cluster-listen
	peers      []string // -cluster-peers
	name       string   // -cluster-name
	dataDir    string   // -data-dir; "" is defaultDataDir(node)
	natsListen string   // -nats-listen
	node       string   // -node; "" is defaultNode
	replicas   int      // -replicas; 0 is the default of the mode
}

const (
	// clusterJoinTimeout bounds the wait for a JetStream leader at start: the time to start the
	// other nodes of a new cluster, or for a restarted node to catch up.
	clusterJoinTimeout = time.Minute
	// peerWait bounds the wait of a new cluster's nodes for the first of them to create the stream.
	peerWait = 5 * time.Second
)

// embedded reports whether this node runs its own NATS server.
func (c *clusterOptions) embedded() bool { return c.listen != "" }

// check refuses combinations that cannot be meant; its errors are usage errors.
func (c *clusterOptions) check() error {
	if len(c.natsURLs) > 0 && c.embedded() {
		return errors.New("-nats and -cluster-listen exclude each other: use an external NATS cluster or the embedded one")
	}
	if !c.embedded() {
		for _, f := range []struct{ name, v string }{{"cluster-peers", strings.Join(c.peers, ",")}, {"data-dir", c.dataDir},
			{"nats-listen", c.natsListen}} {
			if f.v != "" {
				return fmt.Errorf("-%s needs -cluster-listen (the embedded NATS server)", f.name)
			}
		}
	}
	if len(c.natsURLs) == 0 && !c.embedded() && c.replicas > 0 {
		return errors.New("-replicas needs -nats or -cluster-listen: in memory there is one copy")
	}
	for _, u := range c.natsURLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("-nats %q: want URLs like nats://host:4222", u)
		}
	}
	if c.embedded() {
		if len(c.peers) == 0 {
			return errors.New("-cluster-listen needs -cluster-peers, the other nodes' route addresses (one node alone needs no cluster: leave both out)")
		}
		if nodes := 1 + len(c.peers); c.replicas > nodes {
			return fmt.Errorf("-replicas %d needs as many nodes, and -cluster-peers names %d besides this one", c.replicas, len(c.peers))
		}
		for _, a := range append([]string{c.listen}, c.peers...) {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("-cluster-listen and -cluster-peers take host:port: %q: %v", a, err)
			}
		}
	}
	return nil
}

// replicaCount is -replicas, or its default: 1 with -nats (the cluster is the operator's: say
// how many copies), with -cluster-listen 3, or fewer if the cluster has fewer nodes.
func (c *clusterOptions) replicaCount() int {
	if c.replicas > 0 {
		return c.replicas
	}
	if c.embedded() {
		return min(3, 1+len(c.peers))
	}
	return 1
}

// nodeName is -node, or the host name and the port that tells nodes of one host apart: the
// route port of -cluster-listen, else the port of addr, else the process ID (a random port).
func (c *clusterOptions) nodeName(addr string) string {
	if c.node != "" {
		return c.node
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "wsgate"
	}
	for _, a := range []string{c.listen, addr} {
		if _, port, err := net.SplitHostPort(a); err == nil && port != "" && port != "0" {
			return host + "-" + port
		}
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

var unsafePath = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// dataDirFor is -data-dir, or a directory of node's own under the user's cache directory (or
// the working directory if there is none): two nodes on one host never share a store by default.
func (c *clusterOptions) dataDirFor(node string) string {
	if c.dataDir != "" {
		return c.dataDir
	}
	sub := unsafePath.ReplaceAllString(node, "_")
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "wsgate", sub)
	}
	return filepath.Join("wsgate-data", sub)
}

// backend is the broker of a node and what it runs on.
type backend struct {
	broker   broker.Broker
	embedded *natsserver.Server // -cluster-listen; nil otherwise
}

// newBackend builds the broker o asks for. With -cluster-listen it starts the embedded NATS
// server first and waits (within clusterJoinTimeout, or until ctx ends) for its JetStream
// cluster to have a leader, which needs a majority of the nodes.
func newBackend(ctx context.Context, o *options, log *slog.Logger) (*backend, error) {
	if err := hub.CheckOptions(&o.hub); err != nil { // before a minute spent waiting for a cluster
		return nil, err
	}
	c := &o.cluster
	if len(c.natsURLs) == 0 && !c.embedded() {
		log.Info("broker", "kind", "memory", "history_size", o.history.HistorySize, "history_ttl", o.history.HistoryTTL)
		return &backend{broker: memory.New(&o.history)}, nil
	}
	node := c.nodeName(o.addr)
	nopts := &natsbroker.Options{
		URL:         strings.Join(c.natsURLs, ","),
		Replicas:    c.replicaCount(),
		HistorySize: o.history.HistorySize,
		HistoryTTL:  o.history.HistoryTTL,
		MaxBytes:    o.history.MaxBytes,
		Namespaces:  o.history.Namespaces,
		Node:        node,
		Logger:      log,
	}
	if !c.embedded() {
		var b *natsbroker.Broker
		err := retry(ctx, log, func(context.Context) (err error) {
			b, err = natsbroker.New(nopts)
			return err
		}, func(err error) bool { return errors.Is(err, broker.ErrUnavailable) }) // the cluster may start after this node
		if err != nil {
			return nil, fmt.Errorf("nats broker on %s: %w", nopts.URL, err)
		}
		log.Info("broker", "kind", "nats", "nats", nopts.URL, "node", node, "replicas", nopts.Replicas)
		return &backend{broker: b}, nil
	}

	dataDir := c.dataDirFor(node)
	srv, err := natsserver.Start(&natsserver.Options{Name: node, DataDir: dataDir, ClusterName: c.name,
		ClusterListen: c.listen, Peers: c.peers, ClientListen: c.natsListen, Logger: log})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*backend, error) {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return nil, errors.Join(err, srv.Shutdown(sctx))
	}
	log.Info("waiting for the cluster", "cluster", c.name, "node", node, "route", srv.ClusterAddr().String(),
		"peers", strings.Join(c.peers, ","), "data_dir", dataDir)
	wctx, cancel := context.WithTimeout(ctx, clusterJoinTimeout)
	err = srv.WaitJetStream(wctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	// A new cluster's nodes, started together, create the stream one after the other; a node
	// restarted while others are down goes on after peerWait (startHub retries meanwhile).
	pctx, cancel := context.WithTimeout(ctx, peerWait)
	if err := srv.WaitFirstStream(pctx, nopts.Replicas); err != nil {
		log.Info("no stream yet and not all peers online: creating it now", "peers_wanted", nopts.Replicas, "waited", peerWait)
	}
	cancel()
	nopts.URL = srv.ClientURL() // the connection is in process: this only names the server
	nopts.ConnectOptions = srv.ConnectOptions()
	b, err := natsbroker.New(nopts)
	if err != nil {
		return fail(fmt.Errorf("nats broker on the embedded server: %w", err))
	}
	log.Info("joined cluster", "cluster", c.name, "node", node, "leader", srv.Leader(), "route", srv.ClusterAddr().String(),
		"peers", strings.Join(c.peers, ","), "replicas", nopts.Replicas, "data_dir", dataDir, "nats", srv.ClientURL())
	log.Info("broker", "kind", "nats", "embedded", true, "node", node, "replicas", nopts.Replicas)
	return &backend{broker: b, embedded: srv}, nil
}

// startHub starts a hub on the broker. A NATS broker's start is retried, whatever its error,
// within clusterJoinTimeout: nodes that start together all create the stream at once, and
// JetStream may answer only the first of them, or refuse to place its replicas on peers that
// have not joined yet; a cluster that lost its quorum serves again once enough nodes are back.
// Each failure is logged, so that one that lasts is seen before the time is up.
func (b *backend) startHub(ctx context.Context, opts *hub.Options, log *slog.Logger) (*hub.Hub, error) {
	if b.memory() {
		return hub.New(context.Background(), b.broker, opts)
	}
	var h *hub.Hub
	err := retry(ctx, log, func(ctx context.Context) (err error) {
		h, err = hub.New(ctx, b.broker, opts) // the hub keeps no ctx: only the broker's Start uses it
		return err
	}, func(err error) bool { return !errors.Is(err, hub.ErrOptions) })
	return h, err
}

// retry calls f until it succeeds or returns an error that again does not accept, once a
// second within clusterJoinTimeout (or until ctx ends).
func retry(ctx context.Context, log *slog.Logger, f func(context.Context) error, again func(error) bool) error {
	ctx, cancel := context.WithTimeout(ctx, clusterJoinTimeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil || !again(err) {
			return err
		}
		log.Warn("NATS not ready, retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up after %v)", err, clusterJoinTimeout)
		case <-time.After(time.Second):
		}
	}
}

// memory reports whether the broker is the in-memory one.
func (b *backend) memory() bool {
	_, ok := b.broker.(*memory.Broker)
	return ok
}

// close stops the embedded server, after the hub has closed the broker.
func (b *backend) close(ctx context.Context) error {
	if b == nil || b.embedded == nil {
		return nil
	}
	return b.embedded.Shutdown(ctx)
}
