package jwtauth_test

import (
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// channelToken mints a channel token for user and channel, valid for an hour.
func channelToken(t *testing.T, s jwtauth.Signer, user, channel string) string {
	t.Helper()
	return mint(t, s, jwtauth.Claims{User: user, Channel: channel, ExpiresAt: time.Now().Add(time.Hour)})
}

// TestVerifyChannel: a channel token opens its channel to its user, and nothing else: not
// another channel, not another user, not as a connection token; and a connection token opens
// no channel.
func TestVerifyChannel(t *testing.T) {
	k := signers(t, 0)[jwtauth.RS256]
	v := newVerifier(t, k.cfg)
	tok := channelToken(t, k.s, "alice", "secret:plans")
	if err := v.VerifyChannel(ctx, tok, "alice", "secret:plans"); err != nil {
		t.Fatalf("VerifyChannel: %v", err)
	}
	err := v.VerifyChannel(ctx, tok, "alice", "secret:other")
	wantErr(t, err, jwtauth.ErrInvalid, "another channel", tok)
	err = v.VerifyChannel(ctx, tok, "bob", "secret:plans")
	wantErr(t, err, jwtauth.ErrInvalid, "another user", tok)
	err = v.VerifyChannel(ctx, tok, "", "secret:plans")
	wantErr(t, err, jwtauth.ErrInvalid, "another user", tok)
	_, err = v.Verify(ctx, tok)
	wantErr(t, err, jwtauth.ErrInvalid, "channel token is not a connection token", tok)

	conn := mint(t, k.s, alice())
	err = v.VerifyChannel(ctx, conn, "alice", "secret:plans")
	wantErr(t, err, jwtauth.ErrInvalid, "not a channel token", conn)

	// Bob's channel token, presented by alice for bob's channel.
	bobs := channelToken(t, k.s, "bob", "#bob")
	err = v.VerifyChannel(ctx, bobs, "alice", "#bob")
	wantErr(t, err, jwtauth.ErrInvalid, "another user", bobs)

	// Signed by someone else.
	forged := channelToken(t, signers(t, 1)[jwtauth.RS256].s, "alice", "secret:plans")
	err = v.VerifyChannel(ctx, forged, "alice", "secret:plans")
	wantErr(t, err, jwtauth.ErrInvalid, "bad signature", forged)
}

// TestVerifyChannelTimes: channel tokens expire, and need exp unless OptionalChannelExp.
func TestVerifyChannelTimes(t *testing.T) {
	s := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}
	v := newVerifier(t, jwtauth.Config{Secret: secret})
	expired := mint(t, s, jwtauth.Claims{User: "alice", Channel: "c", ExpiresAt: time.Now().Add(-time.Hour)})
	wantErr(t, v.VerifyChannel(ctx, expired, "alice", "c"), jwtauth.ErrExpired, "", expired)
	early := mint(t, s, jwtauth.Claims{User: "alice", Channel: "c", ExpiresAt: time.Now().Add(2 * time.Hour), NotBefore: time.Now().Add(time.Hour)})
	wantErr(t, v.VerifyChannel(ctx, early, "alice", "c"), jwtauth.ErrNotYetValid, "", early)
	forever := mint(t, s, jwtauth.Claims{User: "alice", Channel: "c"})
	wantErr(t, v.VerifyChannel(ctx, forever, "alice", "c"), jwtauth.ErrInvalid, "exp required", forever)

	opt := newVerifier(t, jwtauth.Config{Secret: secret, OptionalChannelExp: true})
	if err := opt.VerifyChannel(ctx, forever, "alice", "c"); err != nil {
		t.Fatalf("OptionalChannelExp: %v", err)
	}
	// OptionalChannelExp does not make connection tokens' exp optional.
	conn := mint(t, s, jwtauth.Claims{User: "alice"})
	_, err := opt.Verify(ctx, conn)
	wantErr(t, err, jwtauth.ErrInvalid, "exp required", conn)
}

// TestAnonymousChannelTokens: a token with an empty sub is refused by default; with
// AnonymousChannels it serves anonymous connections, and never a signed-in user.
func TestAnonymousChannelTokens(t *testing.T) {
	s := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}
	anon := channelToken(t, s, "", "lobby")
	v := newVerifier(t, jwtauth.Config{Secret: secret})
	wantErr(t, v.VerifyChannel(ctx, anon, "", "lobby"), jwtauth.ErrInvalid, "sub required", anon)

	a := newVerifier(t, jwtauth.Config{Secret: secret, AnonymousChannels: true})
	if err := a.VerifyChannel(ctx, anon, "", "lobby"); err != nil {
		t.Fatalf("anonymous: %v", err)
	}
	wantErr(t, a.VerifyChannel(ctx, anon, "alice", "lobby"), jwtauth.ErrInvalid, "another user", anon)
	// Connection tokens still need a sub.
	conn := mint(t, s, jwtauth.Claims{ExpiresAt: time.Now().Add(time.Hour)})
	_, err := a.Verify(ctx, conn)
	wantErr(t, err, jwtauth.ErrInvalid, "sub required", conn)
}
