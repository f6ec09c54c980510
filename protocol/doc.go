// Package protocol is the wire format of wsgate.v1, the JSON subprotocol for pub/sub over
// WebSocket: the requests a client sends, the replies and pushes a server sends, their parsing
// and their error codes. It knows nothing of sockets; docs/PROTOCOL.md is the specification.
//
// Every request carries an id and gets exactly one reply, with either a result or an error:
//
//	→ {"id":1,"op":"subscribe","channel":"chat","since":{"epoch":"x7Kq","offset":41}}
//	← {"id":1,"result":{"epoch":"x7Kq","offset":44,"recovered":true,"publications":[...]}}
//
// Pushes carry no id: {"push":"pub",...}, {"push":"join",...}, {"push":"leave",...} and
// {"push":"ping"}.
package protocol
