// Package testport hands tests loopback ports for servers that must listen on a port known
// before they start (the route ports of a NATS cluster, which name each other) or come back on
// the same port after a restart.
//
// The usual way, listening on port 0 and closing the listener to learn a free port, races with
// everything else on the machine: until the server binds the port, the kernel may give it to any
// other process that listens on port 0 or dials out, since it lies in the ephemeral range both
// draw from. CI, which runs test packages in parallel, lost a NATS cluster to that race, most
// likely: "nats server not ready within 10s" at the cluster's first start, 10.07 s into the test,
// where a fresh server is ready in milliseconds unless it cannot bind its port. Port picks outside
// the ephemeral range instead, where the kernel never assigns a port by itself: only another
// explicit choice can take it.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// Port picks from lowest up, and tries at most tries ports each time.
const (
	lowest = 20000
	tries  = 100
)

var (
	mu    sync.Mutex
	given = map[int]bool{} // handed out by this process, never handed out again
)

// Port returns a TCP port on 127.0.0.1 that nothing listens on now and that the kernel does not
// hand out by itself: it lies outside net.ipv4.ip_local_port_range, below it (from 20000) or,
// on a host whose range starts lower, above it. It is picked at random and checked by listening
// on it, so another process using Port can only take it in the moment between that check and the
// caller's own listen; in this process it is never returned twice. A range that leaves fewer than
// 1000 ports either side fails the test, saying so, rather than racing.
func Port(t testing.TB) int {
	t.Helper()
	lo, hi, err := outside(ephemeralRange())
	if err != nil {
		t.Fatal(err)
	}
	p, err := pick(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// outside returns the larger of the runs of ports [lowest, first) and (last, 65535] beside the
// ephemeral range [first, last], if it has at least 1000 ports.
func outside(first, last int) (lo, hi int, err error) {
	lo, hi = lowest, first
	if 65536-(last+1) > hi-lo {
		lo, hi = last+1, 65536
	}
	if hi-lo < 1000 {
		return 0, 0, fmt.Errorf("testport: the ephemeral range %d-%d (net.ipv4.ip_local_port_range) leaves under 1000 ports beside it above %d", first, last, lowest)
	}
	return lo, hi, nil
}

// Addr is Port as a listen or dial address, "127.0.0.1:port": for a server a test starts later on
// it, or for an address where a dial is refused.
func Addr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", Port(t))
}

// pick returns a free port of [lo, hi) not given before, trying up to tries ports from a random
// one on.
func pick(lo, hi int) (int, error) {
	if hi <= lo {
		return 0, fmt.Errorf("testport: empty range [%d, %d)", lo, hi)
	}
	mu.Lock()
	defer mu.Unlock()
	n := hi - lo
	first := rand.IntN(n)
	for i := range min(n, tries) {
		p := lo + (first+i)%n
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("testport: no free port in [%d, %d) after %d tries", lo, hi, min(n, tries))
}

// ephemeralRange is Linux's ephemeral port range, or 32768-60999 where it cannot be read (the
// other systems' ranges lie within that or above it: 49152-65535 on macOS and Windows).
func ephemeralRange() (first, last int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, 60999
	}
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil || first <= 0 || last < first {
		return 32768, 60999
	}
	return first, last
}
