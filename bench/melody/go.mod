module github.com/wsgate/wsgate/bench/melody

go 1.26.8

require (
	github.com/olahol/melody v1.1.4
	github.com/wsgate/wsgate v0.0.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/lxzan/gws v1.8.9 // indirect
)

// The comparison measures this checkout's servers.
replace github.com/wsgate/wsgate => ../..
