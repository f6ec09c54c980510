package client

import (
	"testing"
	"time"
)

// Retry-After in both of RFC 9110's forms; anything else is no Retry-After; a huge wait is cut to
// MaxRetryAfter, without overflow.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"000030", 30 * time.Second}, // leading zeros are digits too (RFC 9110 §10.2.3)
		{"3600", time.Hour},
		{"3601", time.Hour},
		{"99999999999999999999999", time.Hour},
		{"Tue, 01 Dec 2026 12:00:30 GMT", 30 * time.Second},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0}, // in the past
		{"Wed, 02 Dec 2026 12:00:00 GMT", time.Hour},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
	} {
		if got := parseRetryAfter(c.v, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}
