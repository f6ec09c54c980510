module github.com/wsgate/wsgate

go 1.26.8

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	github.com/dolthub/maphash v0.1.0
	github.com/gorilla/websocket v1.5.3
	github.com/klauspost/compress v1.17.9
	github.com/lxzan/gws v1.8.9
	go.uber.org/goleak v1.3.0
)
