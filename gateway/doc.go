// Package gateway is the layer between the wsgate binary and the hub: who a connection is
// (JWT from gateway/jwtauth, or the application's backend through gateway/proxy), what it may
// do on each channel (namespaces, user channels, channel tokens), what one user and one
// address may cost (connections per user, handshakes per second), and what the backend hears
// (connect and disconnect events through gateway/events) and may do (the backend API of
// gateway/api, through the gateway's Node).
//
// The hub never reads a token or a configuration file: it asks the hooks the gateway sets in
// hub.Options and keeps what they answer. The wsgate.Server asks Admit before each upgrade. The
// binary wires them:
//
//	gw, err := gateway.New(ctx, &cfg, gateway.Deps{Logger: log})
//	gw.HubOptions(&hubOpts)
//	h, err := hub.New(ctx, broker, &hubOpts)
//	gw.Bind(h)
//	wsCfg.Admit = gw.Admit
//	srv, err := wsgate.NewServer(gw.Handler(h.Handler(app)), &wsCfg)
//
// Config's zero value is the open server wsgate has always been. Its keys, the config file's
// gateway sections, are documented in docs/CONFIG.md; Decode reads them from a parsed file and
// reports unknown keys and bad values with their key, Check what cannot work.
//
// # Costs and bounds
//
// Per connection: a connState (about 100 bytes) and, for a raw connection whose identity
// expires, one timer; the private channels it was let into, at most maxGranted names. Per user:
// a registry entry while connected. Per client address: a token bucket, at most
// limits.handshake_addresses of them (about 150 bytes each), the least recently seen dropped.
//
// # Concurrency
//
// Every method is safe for concurrent use. The hooks run on the connection's reader goroutine
// and hold no lock while they call the backend or verify a token.
package gateway
