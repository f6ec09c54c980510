//go:build !race

package hub_test

// raceEnabled: the race detector's instrumentation makes allocations bigger, and heap figures with it.
const raceEnabled = false
