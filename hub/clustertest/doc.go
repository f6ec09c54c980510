// Package clustertest holds the end-to-end tests of wsgate nodes scaled out on NATS JetStream
// (issue 10): hubs, each a wsgate.Server on loopback with its own broker/nats.Broker, clients
// speaking wsgate.v1 on gorilla/websocket, and NATS servers started by the tests in the process
// (one, or a cluster of three) with JetStream on a temporary store. A node that must die without
// a goodbye runs as a child process, which the test kills.
//
// It has no code of its own: the tests live here so that package hub's own tests keep no NATS
// dependency.
package clustertest
