package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// The machine is shared: other processes (and the hypervisor, as steal time) take CPU while we
// measure. cpuSample reads the machine-wide busy and steal time from /proc/stat, so that a
// measurement can say how much CPU went to others during it, and be redone when that was a lot.

// clockTick is USER_HZ, the unit of /proc/stat; 100 on every Linux we run on.
const clockTick = 100

type cpuSample struct {
	busy, steal time.Duration // summed over all CPUs; busy includes steal
	at          time.Time
	ok          bool
}

func readCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	ticks := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / clockTick
	}
	s.busy = ticks(1) + ticks(2) + ticks(3) + ticks(6) + ticks(7) + ticks(8)
	s.steal = ticks(8)
	s.ok = true
	return s
}

// foreignCPU returns the CPUs' worth (CPU-seconds per second) of work done between a and b by
// anything but ours, which used own CPU time in that interval.
func foreignCPU(a, b cpuSample, own time.Duration) float64 {
	if !a.ok || !b.ok || !b.at.After(a.at) {
		return 0
	}
	return max(0, (b.busy-a.busy-own).Seconds()/b.at.Sub(a.at).Seconds())
}

// waitQuiet waits, up to maxWait, for a one-second window in which the machine does less than
// limit CPUs' worth of work (nothing of ours runs meanwhile). It returns the last reading.
func waitQuiet(ctx context.Context, limit float64, maxWait time.Duration) float64 {
	deadline := time.Now().Add(maxWait)
	for {
		a := readCPU()
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
		f := foreignCPU(a, readCPU(), 0)
		if f <= limit || time.Now().After(deadline) {
			return f
		}
	}
}
