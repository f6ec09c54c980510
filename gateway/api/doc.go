// Package api is wsgate's backend HTTP API: what an application's backend calls to publish,
// broadcast, subscribe or unsubscribe a user from the server side, disconnect a user, read
// presence and history, remove history, list channels and describe the node.
//
// Every endpoint is a POST of a JSON object to a path under a base ("/api/publish"), answered
// with a JSON object: the result with 200, or {"error":{"code":N,"message":"..."}} with a status
// that says what to do (4xx: change the request; 429 and 503, with Retry-After: retry later).
// The codes are wsgate.v1's (package protocol). api/openapi.yaml describes every endpoint, and a
// test holds it and the handlers together; package client/apiclient calls them from Go;
// docs/API.md shows them with curl.
//
// # Security
//
// A request presents an API key, as "Authorization: apikey <key>" or "X-API-Key: <key>", never
// in the URL. Keys are kept as SHA-256 sums and compared in constant time with every configured
// key, so the time of an answer says nothing of their lengths or prefixes. No key: 401 with
// WWW-Authenticate; a wrong key: 403; the key is never repeated in an answer or a log line. New
// refuses to build an API without a key unless Options.Insecure says so. No body is read before
// the key is checked.
//
// # Bounds
//
// What one request may cost, whatever its sender: a body of at most MaxDataSize+BodyOverhead
// bytes (413 beyond), decoded once; a broadcast of at most MaxBroadcast channels; a page of
// presence, history or channels of at most MaxLimit entries, and a history answer of about
// MaxResponseBytes of data; one Node call of at most Timeout. At most MaxInFlight requests are
// served at once (429 beyond). Unknown fields, wrong types, a query string, a second JSON value
// are refused with 400 naming what is wrong.
//
// What the handler cannot bound is the connection's: serve it from an http.Server with
// ReadHeaderTimeout, ReadTimeout and WriteTimeout set, so that a peer trickling its headers or
// body byte by byte is cut (the binary's listener does).
//
// The handlers hold no state but the in-flight count: the Node (the gateway over its hub) does
// the work, and may be called concurrently.
package api
