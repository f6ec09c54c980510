package nats

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// limits are a channel's history bounds, and the headers that carry them on its publications.
type limits struct {
	size int           // publications History returns at most; 0: none
	ttl  time.Duration // how long the stream keeps each
	// ttlHdr is the Nats-TTL of its publications when ttl is shorter than the stream's MaxAge;
	// rollup asks the stream to keep only the channel's last message (size 0).
	ttlHdr []string
	rollup bool
}

// streamLimits are what the stream's configuration takes from Options: the most any channel
// keeps, for how long at most.
type streamLimits struct {
	perSubject int64
	maxAge     time.Duration
}

// resolveLimits fills b.def and b.ns from the options, and the stream's bounds: the largest
// count and the longest age of all. A channel keeps its own age through the Nats-TTL header of
// its publications, and its own count through History, which returns no more (see the package
// doc). It refuses a list broker.CheckNamespaces faults, and an age NATS cannot carry: whole
// seconds, 1 s at least.
func (b *Broker) resolveLimits() (streamLimits, error) {
	o := &b.opts
	if err := broker.CheckNamespaces(o.Namespaces); err != nil {
		return streamLimits{}, fmt.Errorf("broker/nats: %w", err)
	}
	b.def = limits{size: o.HistorySize, ttl: o.HistoryTTL}
	b.ns = make([]limits, len(o.Namespaces))
	sl := streamLimits{perSubject: int64(max(o.HistorySize, 1)), maxAge: o.HistoryTTL}
	for i, n := range o.Namespaces {
		l := limits{size: n.HistorySize, ttl: n.HistoryTTL, rollup: n.HistorySize == 0}
		if l.ttl == 0 {
			l.ttl = o.HistoryTTL
		}
		b.ns[i] = l
		sl.perSubject = max(sl.perSubject, int64(l.size))
		sl.maxAge = max(sl.maxAge, l.ttl)
	}
	for i, l := range append([]*limits{&b.def}, ptrs(b.ns)...) {
		if l.ttl == sl.maxAge {
			continue // the stream's MaxAge is this channel's: no header
		}
		if l.ttl < time.Second || l.ttl%time.Second != 0 {
			what := "HistoryTTL"
			if i > 0 {
				what = fmt.Sprintf("namespace %q: HistoryTTL", o.Namespaces[i-1].Prefix)
			}
			return streamLimits{}, fmt.Errorf("broker/nats: %s %v: an age shorter than the longest (%v) travels as a message TTL, in whole seconds, 1 s at least", what, l.ttl, sl.maxAge)
		}
		l.ttlHdr = []string{strconv.FormatInt(int64(l.ttl/time.Second), 10)}
	}
	return sl, nil
}

func ptrs(ls []limits) []*limits {
	p := make([]*limits, len(ls))
	for i := range ls {
		p[i] = &ls[i]
	}
	return p
}

// limitsOf returns channel's history bounds: its namespace's, or the broker's.
func (b *Broker) limitsOf(channel string) *limits {
	if i := broker.MatchNamespace(b.opts.Namespaces, channel); i >= 0 {
		return &b.ns[i]
	}
	return &b.def
}

// needsTTL reports whether some channel's age travels as a message TTL: the server must
// support them (nats-server 2.11 and later), or it would keep those publications for the
// stream's MaxAge without a word.
func (b *Broker) needsTTL() bool {
	if b.def.ttlHdr != nil {
		return true
	}
	for _, l := range b.ns {
		if l.ttlHdr != nil {
			return true
		}
	}
	return false
}

// serverAtLeast reports whether the connected server's version is major.minor or later.
func serverAtLeast(nc *natsgo.Conn, major, minor int) bool {
	v := strings.TrimPrefix(nc.ConnectedServerVersion(), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (ma > major || ma == major && mi >= minor)
}

// headers adds the headers of l to a publication's.
func (l *limits) headers(h natsgo.Header) {
	if l.ttlHdr != nil {
		h[natsgo.MsgTTLHdr] = l.ttlHdr
	}
	if l.rollup {
		h[natsgo.MsgRollup] = rollupSubject
	}
}

var rollupSubject = []string{natsgo.MsgRollupSubject}
