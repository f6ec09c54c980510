// Package jwtauth checks the JSON Web Tokens that identify a wsgate connection and grant it
// private channels, and mints them for tools and tests. The gateway calls it; it knows nothing
// of connections or the hub.
//
// # Connection tokens
//
// A backend that lets its users connect signs a JWT (RFC 7519) with these claims, and the client
// sends it in its connect request (or an Authorization: Bearer header in raw mode):
//
//	{
//	  "sub": "alice",                        required: the user ID, 1 to 1024 bytes, no control characters
//	  "exp": 1767225600,                     required (unless OptionalExp): when the identity lapses;
//	                                         the client must refresh before it, or be closed (4501)
//	  "iat": 1767222000,                     optional; if set, not in the future
//	  "nbf": 1767222000,                     optional; if set, not in the future
//	  "aud": "wsgate", "iss": "my-backend",  required when the Config names an Audience or an Issuer
//	  "info": {"name": "Alice"},             optional: a JSON object of at most 1 KiB, shown to
//	                                         others in presence and join/leave pushes
//	  "channels": ["news", "#alice"]         optional: subscribed by the server at connect,
//	                                         valid channel names, at most MaxChannels (128)
//	}
//
// A connection token must not have a channel claim. The header names the algorithm (alg: HS256,
// RS256, ES256 or EdDSA, among those the Config allows) and, for key sets, the key (kid). A
// token is at most MaxTokenLen (16 KiB) long. Times forgive Leeway (5 s) of clock skew.
//
// # Channel tokens
//
// A private channel's subscribe carries a channel token, minted by the backend for one user and
// one channel, with the same keys:
//
//	{"sub": "alice", "channel": "secret:plans", "exp": 1767225600}
//
// sub must be the connection's user and channel the channel subscribed to; exp is required
// unless OptionalChannelExp. A channel token with an empty sub is refused unless the Config sets
// AnonymousChannels, and then it serves anonymous connections only: such a token is a bearer
// grant to whoever holds it, so it is never the default.
//
// # Errors
//
// Verify and VerifyChannel answer with an error wrapping ErrExpired (the gateway answers code
// 110: get a fresh token), ErrNotYetValid or ErrInvalid (109), with a short reason. No error
// quotes the token.
//
// # Keys
//
// Each key is bound to one algorithm: Config.Secret checks HS256 and nothing else; an RSA
// public key RS256, a P-256 key ES256, an Ed25519 key EdDSA. A token's alg therefore never
// chooses how a key is used: alg "none" is refused, and an HS256 token "signed" with an RSA
// public key as its secret fails (the secret is the only HS256 key). RSA keys under 2048 bits
// are refused. A token with a kid is checked against the keys with that kid; one with a kid no
// key has against the keys configured without a KID; one without a kid against every
// configured key of its alg, and a JWKS key only when the set holds one key of that alg.
//
// # JWKS
//
// With a JWKSURL, one goroutine fetches the set at New, then every JWKSRefresh (after a failure:
// every JWKSMinRefetch, keeping the last good set). A fetch reads at most 1 MiB within
// JWKSTimeout. A token naming an unknown kid (a freshly rotated key) triggers a fetch, but never
// more than one per JWKSMinRefetch whatever the kids tokens invent, and concurrent tokens share
// one fetch. A key removed from the set stops verifying at the next fetch. Close (or the end of
// New's context) stops the goroutine.
//
// # Costs
//
// A token is refused before it is decoded when longer than MaxTokenLen; decoding its header and
// claims is bounded by that length; one token costs at most one signature check per candidate
// key, and candidates are the keys of its alg with its kid (or the configured keys without a
// kid), never the whole JWKS. See BENCHMARKS.md for a check per algorithm.
package jwtauth
