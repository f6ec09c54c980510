package pubsub

import (
	"testing"
	"time"
)

// TestRefreshDelay: a tenth of the token's life before its expiry, at most 30 s, plus as much
// again at random; the JS client's refreshDelay gives the same.
func TestRefreshDelay(t *testing.T) {
	for _, tc := range []struct {
		expiresIn int64
		random    float64
		want      time.Duration
	}{
		{3600, 0, time.Hour - 30*time.Second},
		{3600, 0.5, time.Hour - 45*time.Second},
		{10, 0, 9 * time.Second},
		{10, 0.5, 8500 * time.Millisecond},
		{1, 0, 900 * time.Millisecond},
		{0, 0.9, 0},
	} {
		if got := refreshDelay(tc.expiresIn, func() float64 { return tc.random }); got != tc.want {
			t.Errorf("refreshDelay(%d, %v) = %v, want %v", tc.expiresIn, tc.random, got, tc.want)
		}
	}
}
