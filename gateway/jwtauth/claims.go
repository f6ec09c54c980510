package jwtauth

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/protocol"
)

// Claims are what a token says: who (User), until when (ExpiresAt), what others see of them
// (Info), where the server subscribes them (Channels), and the other registered claims as they
// were. Verify returns them for a connection token; Signer.Mint writes them into a token.
type Claims struct {
	User      string          // sub: the user ID, 1 to MaxUserLen bytes, no control characters
	ExpiresAt time.Time       // exp; zero: none (accepted only with Config.OptionalExp)
	Info      json.RawMessage // info: a JSON object of at most MaxInfoLen bytes, compacted; nil if absent
	Channels  []string        // channels: subscribed server-side at connect, valid names, at most Config.MaxChannels
	// Channel is the channel claim of a channel token, "" in a connection token: Verify refuses a
	// token that has one, so that a grant for one channel never serves as an identity.
	Channel string

	Issuer    string    // iss
	Audience  []string  // aud
	NotBefore time.Time // nbf; zero: none
	IssuedAt  time.Time // iat; zero: none
	ID        string    // jti
}

// wireClaims is the JSON of a token's claims set.
type wireClaims struct {
	jwt.RegisteredClaims
	Info     json.RawMessage `json:"info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	Channel  string          `json:"channel,omitempty"`
}

func (w *wireClaims) claims() *Claims {
	c := &Claims{
		User: w.Subject, Info: w.Info, Channels: w.Channels, Channel: w.Channel,
		Issuer: w.Issuer, Audience: w.Audience, ID: w.ID,
	}
	c.ExpiresAt = timeOf(w.ExpiresAt)
	c.NotBefore = timeOf(w.NotBefore)
	c.IssuedAt = timeOf(w.IssuedAt)
	return c
}

func timeOf(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time
}

func dateOf(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t)
}

// wire is the claims set Mint writes.
func (c *Claims) wire() *wireClaims {
	return &wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: c.User, Issuer: c.Issuer, Audience: c.Audience, ID: c.ID,
			ExpiresAt: dateOf(c.ExpiresAt), NotBefore: dateOf(c.NotBefore), IssuedAt: dateOf(c.IssuedAt),
		},
		Info: c.Info, Channels: c.Channels, Channel: c.Channel,
	}
}

// checkUser holds sub to its bounds. anonymous allows "".
func checkUser(sub string, anonymous bool) error {
	if sub == "" {
		if anonymous {
			return nil
		}
		return invalid("sub required")
	}
	if len(sub) > MaxUserLen {
		return invalid("sub longer than %d bytes", MaxUserLen)
	}
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c < 0x20 || c == 0x7f {
			return invalid("sub has a control character")
		}
	}
	return nil
}

// checkInfo holds info to a JSON object of at most MaxInfoLen bytes once compacted, and returns
// it compacted (nil for absent or null).
func checkInfo(info json.RawMessage) (json.RawMessage, error) {
	if len(info) == 0 || string(info) == "null" {
		return nil, nil
	}
	if info[0] != '{' {
		return nil, invalid("info must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, info); err != nil {
		return nil, invalid("info is not JSON")
	}
	if b.Len() > MaxInfoLen {
		return nil, invalid("info longer than %d bytes", MaxInfoLen)
	}
	return b.Bytes(), nil
}

// checkChannels holds channels to max valid names.
func checkChannels(chs []string, max int) error {
	if len(chs) > max {
		return invalid("more than %d channels", max)
	}
	for i, ch := range chs {
		if protocol.ValidChannel(ch) != nil {
			return invalid("channels[%d] is not a valid channel name", i)
		}
	}
	return nil
}
