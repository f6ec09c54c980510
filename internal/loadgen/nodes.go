package loadgen

import (
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// NodeResult is one node's part of a fanout against a cluster (Config.Nodes): the subscribers
// dealt to it and what they got. The publisher's node has none when there are two nodes or more.
type NodeResult struct {
	URL         string  `json:"url"`
	Publisher   bool    `json:"publisher,omitempty"`
	Subscribers int     `json:"subscribers"` // subscribed when publishing began
	Deliveries  uint64  `json:"deliveries"`
	Lost        uint64  `json:"lost"`
	P50Micros   float64 `json:"p50_us"`
	P99Micros   float64 `json:"p99_us"`
}

// nodeTallies keeps a fanout's figures per node; it is empty against one server.
type nodeTallies struct {
	c   *Config
	per []*nodeTally // by subscriber node, in the order of c.subscriberNodes()
}

// nodeTally is one node's figures. The subscribers' readers record into it concurrently; book and
// the results are read once they have ended.
type nodeTally struct {
	url         string
	mu          sync.Mutex // guards hist
	hist        *hdrhistogram.Histogram
	subscribers int
	deliveries  uint64
	lost        uint64
}

func newNodeTally(c *Config) *nodeTallies {
	t := &nodeTallies{c: c}
	if len(c.Nodes) == 0 {
		return t
	}
	for _, u := range c.subscriberNodes() {
		t.per = append(t.per, &nodeTally{url: u, hist: newHist()})
	}
	return t
}

// of is the tally of subscriber i's node (the dialer deals them the same way), nil without nodes.
func (t *nodeTallies) of(i int) *nodeTally {
	if len(t.per) == 0 {
		return nil
	}
	return t.per[i%len(t.per)]
}

// record adds one delivery's latency; a no-op on nil.
func (n *nodeTally) record(d time.Duration) {
	if n == nil {
		return
	}
	n.mu.Lock()
	_ = n.hist.RecordValue(min(max(int64(d), histLowest), histHighest))
	n.mu.Unlock()
}

// book adds what subscriber s got, and the lost publications it did not, once its reader ended.
func (t *nodeTallies) book(s *subscriber, lost uint64) {
	if s.node == nil {
		return
	}
	s.node.subscribers++
	s.node.deliveries += s.got
	s.node.lost += lost
}

// results lists every node, the publisher's first, with its figures.
func (t *nodeTallies) results() []NodeResult {
	if len(t.per) == 0 {
		return nil
	}
	var out []NodeResult
	if len(t.c.Nodes) > 1 {
		out = append(out, NodeResult{URL: t.c.URL, Publisher: true})
	}
	for _, n := range t.per {
		l := summarize(n.hist)
		out = append(out, NodeResult{URL: n.url, Publisher: len(t.c.Nodes) == 1, Subscribers: n.subscribers,
			Deliveries: n.deliveries, Lost: n.lost, P50Micros: l.P50, P99Micros: l.P99})
	}
	return out
}
