// Package loadgen is the load generator behind "wsgate bench": bounded, verifying load against a
// WebSocket server, with latency histograms, fairness, a throughput time line and reports (text,
// JSON, a self-contained HTML page with SVG plots).
//
// Four modes, each a function taking a Config and returning a *Result:
//
//   - Echo: Conns connections, each keeping Window messages of Size bytes in flight (1 = closed loop);
//     every echo is checked byte for byte (a message is stamped with its connection and sequence
//     number, so a misrouted or reordered echo counts as a mismatch).
//   - Idle: Conns connections opened (spread over 127.0.0.x source addresses when one address has
//     too few ports) and held without traffic; with PID, the target process's resident memory
//     before and after, per connection.
//   - Connect: Conns workers opening and closing connections (with the close handshake) in a loop:
//     handshakes per second and handshake latency.
//   - Fanout: Subscribers connections subscribed to one channel (wsgate.v1, or Centrifugo's JSON
//     protocol), one more connection publishing Rate messages per second: delivery latency from the
//     publisher's timestamp in the data, and loss, duplicates and reordering per subscriber.
//
// The server's side: WatchServers reads each target's Prometheus metrics (text format, parsed with
// prometheus/common's expfmt) before a run, every second during it and after it, and reports per
// node and in sum the CPU seconds spent, resident memory, heap in use, goroutines and connections
// (before, peak, after) and the send-queue drops and slow-consumer closes. A target without
// metrics is reported as not available, never an error. One goroutine per node that answered,
// owned by the watch and ended by Stop; every response is bounded (MaxMetricsBytes) and every
// scrape has a timeout.
//
// Every run is bounded: connections, rate and duration are capped by Config.Check, every read and
// write has a deadline, and each mode returns within its duration plus a bounded drain. Targets
// must be loopback addresses unless AllowRemote is set.
//
// Concurrency: a mode owns every goroutine it starts and waits for all of them before it returns.
// A Progress callback, if set, is called from one goroutine at a time.
package loadgen
