package client

import (
	"testing"
	"time"
)

// Retry-After in both of RFC 9110's forms, a date past giving 0; anything else is no Retry-After
// (ok false); a huge wait is cut to MaxRetryAfter, without overflow.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"1", time.Second, true},
		{"3", 3 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"000030", 30 * time.Second, true}, // leading zeros are digits too
		{"3600", time.Hour, true},
		{"3601", time.Hour, true},
		{"99999999999999999999999", time.Hour, true},
		{"Tue, 01 Dec 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0, true}, // in the past
		{"Wed, 02 Dec 2026 12:00:00 GMT", time.Hour, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	} {
		if got, ok := ParseRetryAfter(c.v, now); got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
