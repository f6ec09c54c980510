package jwtauth_test

import (
	"encoding/json"
	"testing"
)

// BenchmarkVerify is the cost of checking one connection token, per algorithm: what a connect
// pays before the hub sees it. The token is typical: sub, exp, iat, a small info and two
// channels.
func BenchmarkVerify(b *testing.B) {
	ks := signers(b, 0)
	for _, alg := range algs {
		b.Run(alg, func(b *testing.B) {
			k := ks[alg]
			v := newVerifier(b, k.cfg)
			c := alice()
			c.Info = json.RawMessage(`{"name":"Alice"}`)
			c.Channels = []string{"news", "#alice"}
			tok := mint(b, k.s, c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
