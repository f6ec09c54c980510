package nats

import (
	"context"
	"strings"
	"testing"
)

// allowed is every byte protocol.ValidChannel allows.
const allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:.@/"

func TestSubjectToken(t *testing.T) {
	for name, want := range map[string]string{
		"room:1":      "room:1",
		"a.b":         "a%2Eb",
		"":            "%",
		"*":           "%2A",
		">":           "%3E",
		"100%":        "100%25",
		"sp ace\x00é": "sp%20ace%00%C3%A9",
		allowed:       strings.ReplaceAll(allowed, ".", "%2E"),
	} {
		if got := subjectToken(name); got != want {
			t.Errorf("subjectToken(%q) = %q, want %q", name, got, want)
		}
		if back, ok := nameOfToken(want); !ok || back != name {
			t.Errorf("nameOfToken(%q) = %q, %v; want %q", want, back, ok, name)
		}
	}
	for _, bad := range []string{"", "%2", "%2e", "%41", "%ZZ", "a.b", "a b"} {
		if _, ok := nameOfToken(bad); ok {
			t.Errorf("nameOfToken(%q) accepted a token subjectToken never makes", bad)
		}
	}
}

func FuzzSubjectToken(f *testing.F) {
	for _, seed := range []string{"", "room:1", "a.b.c", allowed, "*", ">", "%", "%41", "\xff\x00 \t\r\n", "é"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tok := subjectToken(name)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("subjectToken(%q) = %q: not one literal subject token", name, tok)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c < 0x21 || c > 0x7e {
				t.Fatalf("subjectToken(%q) = %q: byte %#x", name, tok, c)
			}
		}
		if back, ok := nameOfToken(tok); !ok || back != name {
			t.Fatalf("round trip of %q through %q gave %q, %v", name, tok, back, ok)
		}
		if back, ok := nameOfToken(name); ok && subjectToken(back) != name {
			t.Fatalf("nameOfToken(%q) = %q, whose token is %q: two tokens for one name", name, back, subjectToken(back))
		}
	})
}

// TestEveryAllowedByteRoundTrips publishes to channels named with every byte a channel may
// have, one channel a byte and one with all of them, and reads each back, delivered and from
// history, under its own name and nobody else's.
func TestEveryAllowedByteRoundTrips(t *testing.T) {
	s := runServer(t, "", 0)
	col := newCollector()
	b := started(t, s, Options{}, col.deliver)
	ctx := context.Background()
	names := []string{allowed, strings.Repeat("a.", 127) + "b"} // 255 bytes, 127 dots
	for i := 0; i < len(allowed); i++ {
		names = append(names, "c"+allowed[i:i+1])
	}
	for _, ch := range names {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range names {
		if _, err := b.Publish(ctx, ch, []byte(`"`+ch+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range names {
		got := col.wait(t, ch, 1)
		if len(got) != 1 || string(got[0].Data) != `"`+ch+`"` || got[0].Channel != ch || got[0].Offset != 1 {
			t.Fatalf("channel %q delivered %+v", ch, got)
		}
		r, err := b.History(ctx, ch, nil, 10)
		if err != nil || len(r.Publications) != 1 || string(r.Publications[0].Data) != `"`+ch+`"` {
			t.Fatalf("channel %q history %+v %v", ch, r, err)
		}
	}
	// "c." must not have caught "c:" or anything else: one publication each, checked above;
	// and a wildcard-looking name is a name like any other.
	if _, err := b.Publish(ctx, "c*", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.History(ctx, "c.", nil, 10); len(r.Publications) != 1 {
		t.Fatalf("c. holds %+v", r)
	}
}
