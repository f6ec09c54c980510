package hub

import (
	"container/heap"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/protocol"
)

// The connections' deadlines (connect timeout, identity expiry, refresh grace) share one heap,
// which the hub's loop serves with one timer: no goroutine and no time.Timer per connection. A
// connection has at most one deadline at a time, kept in its client (dlAt, dlIdx, dlKind), so the
// heap costs one pointer per connection that has one, and scheduling, moving or cancelling one
// costs O(log n).

// deadlineKind says what a connection's deadline does when it passes.
type deadlineKind uint8

const (
	deadlineConnect deadlineKind = iota + 1 // not connected yet: close 4002
	deadlineExpiry                          // identity expired: refresh push, then the grace
	deadlineGrace                           // not refreshed in time: close 4501
)

// deadlines is the heap of the connections' deadlines, earliest first.
type deadlines struct {
	mu   sync.Mutex // taken after a client's mu
	heap deadlineHeap
	wake chan struct{} // one slot: the earliest deadline moved earlier
}

// schedule sets cl's deadline (replacing the one it had). Called with cl.mu held.
func (d *deadlines) schedule(cl *client, at time.Time, kind deadlineKind) {
	d.mu.Lock()
	cl.dlAt, cl.dlKind = at, kind
	cl.dlSeq++
	if cl.dlIdx >= 0 {
		heap.Fix(&d.heap, cl.dlIdx)
	} else {
		heap.Push(&d.heap, cl)
	}
	first := d.heap[0] == cl
	d.mu.Unlock()
	if first {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// cancel removes cl's deadline, if it has one. Called with cl.mu held, or after OnClose.
func (d *deadlines) cancel(cl *client) {
	d.mu.Lock()
	if cl.dlIdx >= 0 {
		heap.Remove(&d.heap, cl.dlIdx)
	}
	cl.dlSeq++
	d.mu.Unlock()
}

// due is a deadline taken off the heap, to act on.
type due struct {
	cl   *client
	kind deadlineKind
	seq  uint32
}

// pop takes off the deadlines passed at now, and returns them and the next one (zero: none).
func (d *deadlines) pop(now time.Time, buf []due) ([]due, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.heap) > 0 && !d.heap[0].dlAt.After(now) {
		cl := heap.Pop(&d.heap).(*client)
		buf = append(buf, due{cl, cl.dlKind, cl.dlSeq})
	}
	if len(d.heap) == 0 {
		return buf, time.Time{}
	}
	return buf, d.heap[0].dlAt
}

// runDeadlines acts on the deadlines passed, and returns when the next one is due (zero: none).
// Called by the loop. Each runs under its client's mu, and only if the client's deadline is still
// the one taken off (a refresh or a connect in between changes its dlSeq): a refresh racing its
// expiry either lands first, or finds the connection closing.
func (h *Hub) runDeadlines(now time.Time, buf []due) ([]due, time.Time) {
	buf, next := h.dl.pop(now, buf[:0])
	for _, x := range buf {
		cl := x.cl
		cl.mu.Lock()
		if cl.dlSeq == x.seq && !cl.closed {
			switch x.kind {
			case deadlineConnect:
				_ = cl.conn.Close(protocol.CloseConnectTimeout, "no connect within "+h.opts.ConnectTimeout.String())
			case deadlineExpiry:
				// Pinned: the push is never evicted; a queue that refuses it is the connection's end.
				if cl.conn.SendPinned(wsgate.Text, refreshPush) != nil {
					_ = cl.conn.Close(wsgate.CloseTryAgainLater, "refresh push could not be queued")
				}
				h.dl.schedule(cl, now.Add(h.opts.RefreshGrace), deadlineGrace)
			case deadlineGrace:
				_ = cl.conn.Close(protocol.CloseTokenExpired, "token expired")
			}
		}
		cl.mu.Unlock()
	}
	clear(buf)
	next, _ = h.dl.next() // with the graces scheduled above
	return buf, next
}

// next returns the earliest deadline (zero: none).
func (d *deadlines) next() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.heap) == 0 {
		return time.Time{}, false
	}
	return d.heap[0].dlAt, true
}

// refreshPush tells a client that its identity expired: refresh within the grace, or be closed.
var refreshPush = []byte(`{"push":"refresh"}`)

// deadlineHeap orders clients by deadline, as container/heap wants.
type deadlineHeap []*client

func (q deadlineHeap) Len() int           { return len(q) }
func (q deadlineHeap) Less(i, j int) bool { return q[i].dlAt.Before(q[j].dlAt) }
func (q deadlineHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].dlIdx, q[j].dlIdx = i, j
}
func (q *deadlineHeap) Push(x any) {
	cl := x.(*client)
	cl.dlIdx = len(*q)
	*q = append(*q, cl)
}
func (q *deadlineHeap) Pop() any {
	old := *q
	cl := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	cl.dlIdx = -1
	return cl
}
