package nats

import "strings"

// Subject layout, under Options.Prefix (default "wsgate"):
//
//	<prefix>.in.<token>  where a channel's publications are stored (the stream's subjects)
//	<prefix>.d.<token>   where the stream republishes them once stored: nodes subscribe here
//	<prefix>.x.<token>   a cluster topic (Send, Listen)
//	<prefix>.ob.q        the outbox's queued events (outbox.go)
//	<prefix>.ob.h.<node>.<token>  an event a node holds under a key (node: base64url of its name)
//
// A token is one subject token naming a channel or topic readably; see subjectToken.
const (
	inPart  = ".in."
	outPart = ".d."
	xPart   = ".x."

	outboxQueue = ".ob.q"
	outboxHeld  = ".ob.h."
)

// maxNameLen bounds a channel or topic name: its token, up to three times longer, must keep the
// subject within the server's control line (4 KiB by default), whose breach closes the connection.
const maxNameLen = 1024

// plain reports whether c stands for itself in a token: letters, digits and _-:@/ (what
// protocol.ValidChannel allows, except '.', which separates subject tokens).
func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '@' || c == '/'
}

const hexDigits = "0123456789ABCDEF"

// subjectToken maps name onto one subject token, readably and reversibly: every byte that is not
// plain becomes %XX (upper-case hex), so '.', '*', '>', spaces, '%' itself and any byte a future
// protocol allows are safe. The empty name, which no token can be, becomes "%".
func subjectToken(name string) string {
	if name == "" {
		return "%"
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if !plain(name[i]) {
			n++
		}
	}
	if n == 0 {
		return name
	}
	var sb strings.Builder
	sb.Grow(len(name) + 2*n)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if plain(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// nameOfToken reverses subjectToken; ok is false for a string subjectToken never returns.
func nameOfToken(tok string) (name string, ok bool) {
	if tok == "%" {
		return "", true
	}
	if tok == "" {
		return "", false
	}
	var sb strings.Builder
	sb.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plain(c) {
			sb.WriteByte(c)
			continue
		}
		if c != '%' || i+2 >= len(tok) {
			return "", false
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b := byte(hi<<4 | lo)
		if plain(b) {
			return "", false // subjectToken never escapes a plain byte
		}
		sb.WriteByte(b)
		i += 2
	}
	return sb.String(), true
}

// unhex is the value of an upper-case hex digit, -1 for anything else.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
