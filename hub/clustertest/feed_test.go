package clustertest_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

// feed is what one subscriber received of a channel: each publication must be the one after the
// last, in one epoch: in offset order, none twice, none missing.
type feed struct {
	channel string
	epoch   string
	last    uint64
	data    map[uint64]string // what came at each offset
}

// newFeed starts a feed at a subscribe reply's top: live publications follow it.
func newFeed(channel string, top protocol.SubscribeResult) *feed {
	return &feed{channel: channel, epoch: top.Epoch, last: top.Offset, data: map[uint64]string{}}
}

// add takes the next publication.
func (fd *feed) add(p protocol.Publication) error {
	if fd.epoch == "" && fd.last == 0 { // subscribed before the channel's first publication
		fd.epoch = p.Epoch
	}
	if p.Epoch != fd.epoch || p.Offset != fd.last+1 {
		return fmt.Errorf("%s: publication %s/%d after %s/%d: a duplicate, a reordering or a hole",
			fd.channel, p.Epoch, p.Offset, fd.epoch, fd.last)
	}
	fd.last = p.Offset
	fd.data[p.Offset] = string(p.Data)
	return nil
}

// readUntil reads c's pushes into fd until it has offset top. Pushes of other kinds and channels
// are skipped; a gap push, the connection's end or 5 s without a frame is an error.
func (fd *feed) readUntil(c *wsClient, top uint64) error {
	for fd.last < top {
		f, err := c.next(5 * time.Second)
		if err != nil {
			return fmt.Errorf("%s: at offset %d of %d: %w", fd.channel, fd.last, top, err)
		}
		if f.str("channel") != fd.channel {
			continue
		}
		switch f.str("push") {
		case "gap":
			return fmt.Errorf("%s: gap push %v at offset %d", fd.channel, f, fd.last)
		case "pub":
			var p protocol.Publication
			if err := json.Unmarshal(f["offset"], &p.Offset); err != nil {
				return fmt.Errorf("pub push %v: %w", f, err)
			}
			p.Epoch, p.Data = f.str("epoch"), f["data"]
			if err := fd.add(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// ledger records what publishers were acknowledged: the offset each publication got.
type ledger struct {
	mu    sync.Mutex
	epoch string
	acked map[uint64]string
	top   uint64
}

func newLedger() *ledger { return &ledger{acked: map[uint64]string{}} }

// record notes that data was acknowledged at pos; an offset given twice or another epoch is an
// error.
func (l *ledger) record(pos protocol.Position, data string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epoch == "" {
		l.epoch = pos.Epoch
	}
	if pos.Epoch != l.epoch {
		return fmt.Errorf("acknowledged in epoch %s, then %s", l.epoch, pos.Epoch)
	}
	if prev, taken := l.acked[pos.Offset]; taken {
		return fmt.Errorf("offset %d acknowledged twice: %s and %s", pos.Offset, prev, data)
	}
	l.acked[pos.Offset] = data
	l.top = max(l.top, pos.Offset)
	return nil
}

// highest returns the highest offset acknowledged.
func (l *ledger) highest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.top
}

// count returns how many publications were acknowledged.
func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// missing lists what was acknowledged in (from, to] that got does not hold, or holds with other
// data: empty when got has every acknowledged publication.
func (l *ledger) missing(got map[uint64]string, from, to uint64) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for off := from + 1; off <= to; off++ {
		want, ok := l.acked[off]
		if !ok {
			continue
		}
		if have, ok := got[off]; !ok || have != want {
			out = append(out, fmt.Sprintf("%d: %q, acknowledged %q", off, have, want))
		}
	}
	return out
}

// recoverOn connects to a node and subscribes to fd's channel from fd's last position, as a
// client does after a dropped link: the reply must recover everything (no "more" at these
// sizes), and its publications must follow on in fd up to the reply's top.
func recoverOn(t *testing.T, what, url string, fd *feed) (*wsClient, protocol.SubscribeResult) {
	t.Helper()
	c := dialWS(t, url)
	last := fd.last
	r := c.subscribe(fd.channel, &protocol.Position{Epoch: fd.epoch, Offset: last}, false)
	if !r.Recovered || r.More || r.Epoch != fd.epoch || r.Offset < last {
		t.Fatalf("%s: recover from %s/%d: recovered %v, more %v, top %s/%d",
			what, fd.epoch, last, r.Recovered, r.More, r.Epoch, r.Offset)
	}
	for _, p := range r.Publications {
		p.Epoch = r.Epoch
		if err := fd.add(p); err != nil {
			t.Fatalf("%s: recovered from %d: %v", what, last, err)
		}
	}
	if fd.last != r.Offset {
		t.Fatalf("%s: recovered from %d up to %d, the reply's top is %d", what, last, fd.last, r.Offset)
	}
	return c, r
}
