// Package apiclient calls wsgate's backend HTTP API (package gateway/api, api/openapi.yaml)
// from Go: one method per endpoint, context first, typed results, and a typed *Error for every
// answer that is not a success.
//
//	c, err := apiclient.New("http://localhost:8000/api", os.Getenv("WSGATE_API_KEY"), nil)
//	pos, err := c.Publish(ctx, "news", json.RawMessage(`{"headline":"wsgate ships"}`), "")
//	var ae *apiclient.Error
//	if errors.As(err, &ae) && ae.Retryable() { /* wait ae.RetryAfter, try again */ }
//
// Its methods are those of api.Node, so a *Client is an api.Node: an API can be served in
// front of another server's. A Client is safe for concurrent use.
package apiclient
