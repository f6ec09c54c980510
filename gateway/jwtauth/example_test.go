package jwtauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/gateway/jwtauth"
)

// A backend mints a connection token with the shared secret; the gateway verifies it and gets
// the user, their info and the channels to subscribe them to.
func Example() {
	secret := []byte("a development secret of 32 bytes")

	signer := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}
	token, err := signer.Mint(jwtauth.Claims{
		User:      "alice",
		ExpiresAt: time.Now().Add(time.Hour),
		IssuedAt:  time.Now(),
		Info:      json.RawMessage(`{"name": "Alice"}`),
		Channels:  []string{"news", "#alice"},
	})
	if err != nil {
		panic(err)
	}

	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.User, string(claims.Info), claims.Channels)

	expired, _ := signer.Mint(jwtauth.Claims{User: "alice", ExpiresAt: time.Now().Add(-time.Hour)})
	_, err = v.Verify(context.Background(), expired)
	fmt.Println(errors.Is(err, jwtauth.ErrExpired))
	// Output:
	// alice {"name":"Alice"} [news #alice]
	// true
}

// A channel token grants one user one private channel.
func ExampleVerifier_VerifyChannel() {
	secret := []byte("a development secret of 32 bytes")
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	token, _ := jwtauth.Signer{Alg: jwtauth.HS256, Key: secret}.Mint(jwtauth.Claims{
		User: "alice", Channel: "secret:plans", ExpiresAt: time.Now().Add(time.Hour),
	})
	fmt.Println(v.VerifyChannel(context.Background(), token, "alice", "secret:plans"))
	fmt.Println(v.VerifyChannel(context.Background(), token, "bob", "secret:plans"))
	// Output:
	// <nil>
	// jwtauth: invalid token: the token is for another user
}
