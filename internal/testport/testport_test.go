package testport

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestPortIsBelowTheEphemeralRangeAndFree: every port is outside the range the kernel assigns
// from, can be listened on, and is not handed out twice.
func TestPortIsBelowTheEphemeralRangeAndFree(t *testing.T) {
	first, last := ephemeralRange()
	seen := map[int]bool{}
	for range 50 {
		p := Port(t)
		if p < lowest || p >= first && p <= last {
			t.Fatalf("port %d below %d or in the ephemeral range %d-%d", p, lowest, first, last)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
}

// TestPickSkipsPortsInUse: in a run of ten ports with all but one held by listeners, pick returns
// the free one, and then none (it was given).
func TestPickSkipsPortsInUse(t *testing.T) {
	lo, hi, free, held := freeRun(t, 10)
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	p, err := pick(lo, hi)
	if err != nil || p != free {
		t.Fatalf("pick(%d, %d) = %d, %v; want %d, the one port nothing holds", lo, hi, p, err, free)
	}
	if p, err := pick(lo, hi); err == nil {
		t.Fatalf("pick(%d, %d) again = %d; want an error, every port being held or given", lo, hi, p)
	}
}

// freeRun finds n consecutive ports below the ephemeral range that are free and not given before
// (as they are in a second run of the test: -count), holds all but one (free), and returns the
// run [lo, hi).
func freeRun(t *testing.T, n int) (lo, hi, free int, held []net.Listener) {
	t.Helper()
	first, _ := ephemeralRange()
	for start := first - n; start > lowest; start -= n {
		if anyGiven(start, start+n) {
			continue
		}
		held = held[:0]
		for p := start; p < start+n-1; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			held = append(held, l)
		}
		if len(held) == n-1 {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", start+n-1)); err == nil {
				l.Close()
				return start, start + n, start + n - 1, held
			}
		}
		for _, l := range held {
			l.Close()
		}
	}
	t.Fatal("no run of free ports below the ephemeral range")
	return
}

// TestOutsideTheEphemeralRange: the larger run beside the range, and an error where neither side
// has 1000 ports.
func TestOutsideTheEphemeralRange(t *testing.T) {
	for _, c := range []struct {
		first, last, lo, hi int
		fails               bool
	}{
		{first: 32768, last: 60999, lo: lowest, hi: 32768}, // Linux's default
		{first: 1024, last: 60999, lo: 61000, hi: 65536},   // widened downwards
		{first: 49152, last: 65535, lo: lowest, hi: 49152}, // macOS, Windows
		{first: 1024, last: 65535, fails: true},            // TUNING.md's load-generator host
		{first: 20500, last: 64600, fails: true},
	} {
		lo, hi, err := outside(c.first, c.last)
		if c.fails {
			if err == nil || !strings.Contains(err.Error(), "ip_local_port_range") {
				t.Errorf("outside(%d, %d) = %d, %d, %v; want an error naming the sysctl", c.first, c.last, lo, hi, err)
			}
			continue
		}
		if err != nil || lo != c.lo || hi != c.hi {
			t.Errorf("outside(%d, %d) = %d, %d, %v; want %d, %d", c.first, c.last, lo, hi, err, c.lo, c.hi)
		}
	}
}

func anyGiven(lo, hi int) bool {
	mu.Lock()
	defer mu.Unlock()
	for p := lo; p < hi; p++ {
		if given[p] {
			return true
		}
	}
	return false
}
