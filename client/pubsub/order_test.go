package pubsub

import (
	"slices"
	"testing"
)

// TestEndpointOrder: every endpoint once, from next round the circle, the one just lost last.
func TestEndpointOrder(t *testing.T) {
	for _, c := range []struct {
		n, next, lost int
		want          []int
	}{
		{3, 0, -1, []int{0, 1, 2}},
		{3, 2, -1, []int{2, 0, 1}},
		{3, 2, 0, []int{2, 1, 0}},
		{4, 1, 2, []int{1, 3, 0, 2}},
		{1, 0, 0, []int{0}},
	} {
		if got := endpointOrder(c.n, c.next, c.lost); !slices.Equal(got, c.want) {
			t.Errorf("endpointOrder(%d, %d, %d) = %v, want %v", c.n, c.next, c.lost, got, c.want)
		}
	}
}
