package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/protocol"
)

// The results, as the API sends them (api/openapi.yaml).
type (
	Position       = broker.Position
	Publication    = broker.Publication
	HistoryResult  = broker.HistoryResult
	ClientInfo     = protocol.ClientInfo
	PresenceResult = protocol.PresenceResult
	ChannelResult  = api.ChannelResult
	PresenceStats  = api.PresenceStats
	ChannelInfo    = api.ChannelInfo
	ChannelsResult = api.ChannelsResult
	NodeInfo       = api.NodeInfo
)

// Defaults for Options' zero fields.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 64 << 20
)

// Options configure a Client; nil or the zero value works.
type Options struct {
	// HTTPClient makes the requests. Default: a client with a DefaultTimeout timeout (the
	// server's own bound on a call is 10 s by default).
	HTTPClient *http.Client
	// MaxResponseBytes bounds the answer read, whatever the server sends. Default 64 MiB.
	MaxResponseBytes int64
}

// Client calls one server's API.
type Client struct {
	base string // the API's base URL, without a trailing slash
	auth string // the Authorization header; "" without a key
	hc   *http.Client
	max  int64
}

var _ api.Node = (*Client)(nil)

// New returns a Client for the API at baseURL (its base path included:
// "https://ws.example.com/api") with key ("" only for a server running insecure).
func New(baseURL, key string, opts *Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("apiclient: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("apiclient: base URL %q: want http(s)://host[:port]/path, without query, fragment or user (the key goes in a header)", u.Redacted())
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return nil, errors.New("apiclient: the key has a byte that is not printable ASCII")
		}
	}
	c := &Client{base: strings.TrimSuffix(u.String(), "/"), hc: &http.Client{Timeout: DefaultTimeout}, max: DefaultMaxResponseBytes}
	if key != "" {
		c.auth = "apikey " + key
	}
	if opts != nil {
		if opts.HTTPClient != nil {
			c.hc = opts.HTTPClient
		}
		if opts.MaxResponseBytes > 0 {
			c.max = opts.MaxResponseBytes
		}
	}
	return c, nil
}

// Error is an answer of the API that is not a success: its HTTP status, and the code and
// message of its body (protocol's codes; 0 when the body was not the API's, from a proxy say).
type Error struct {
	Status  int
	Code    protocol.Code
	Message string
	// RetryAfter is the answer's Retry-After, when it has one (429, 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("apiclient: %d %s (code %d): %s", e.Status, http.StatusText(e.Status), e.Code, e.Message)
}

// Retryable reports whether the same request may succeed later: 429 and 5xx.
func (e *Error) Retryable() bool { return e.Status == http.StatusTooManyRequests || e.Status >= 500 }

// call POSTs req to path and decodes the answer into res.
func (c *Client) call(ctx context.Context, path string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("apiclient: %s: %w", path, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("apiclient: %s: %w", path, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	if c.auth != "" {
		hr.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("apiclient: %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return fmt.Errorf("apiclient: %s: reading the answer: %w", path, err)
	}
	if int64(len(b)) > c.max {
		return fmt.Errorf("apiclient: %s: answer over %d bytes", path, c.max)
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp, b)
	}
	if err := json.Unmarshal(b, res); err != nil {
		return fmt.Errorf("apiclient: %s: decoding the answer: %w", path, err)
	}
	return nil
}

// answerError makes the *Error of an answer that is not a success.
func answerError(resp *http.Response, b []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var body struct {
		Error *protocol.Error `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Message = strings.TrimSpace(string(b)) // not the API's body: a proxy's page, say
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// Publish publishes data (JSON) on channel. A non-empty idempotencyKey makes a repeated
// publish within the server's window answer the first one's position without publishing again:
// retry with the same key after a timeout or a 503.
func (c *Client) Publish(ctx context.Context, channel string, data json.RawMessage, idempotencyKey string) (Position, error) {
	var res Position
	err := c.call(ctx, "/publish", api.PublishRequest{Channel: channel, Data: data, IdempotencyKey: idempotencyKey}, &res)
	return res, err
}

// Broadcast publishes data on every one of channels and returns a result per channel, in order:
// a position or that channel's error.
func (c *Client) Broadcast(ctx context.Context, channels []string, data json.RawMessage, idempotencyKey string) ([]ChannelResult, error) {
	var res api.BroadcastResult
	err := c.call(ctx, "/broadcast", api.BroadcastRequest{Channels: channels, Data: data, IdempotencyKey: idempotencyKey}, &res)
	return res.Results, err
}

// Subscribe subscribes every connection of user to channel from the server side, and returns
// how many connections that reached (0: the user is not connected).
func (c *Client) Subscribe(ctx context.Context, user, channel string) (int, error) {
	var res api.ConnectionsResult
	err := c.call(ctx, "/subscribe", api.UserChannelRequest{User: user, Channel: channel}, &res)
	return res.Connections, err
}

// Unsubscribe unsubscribes every connection of user from channel.
func (c *Client) Unsubscribe(ctx context.Context, user, channel string) (int, error) {
	var res api.ConnectionsResult
	err := c.call(ctx, "/unsubscribe", api.UserChannelRequest{User: user, Channel: channel}, &res)
	return res.Connections, err
}

// Disconnect closes every connection of user with code (0: 4003, disconnected by the
// application) and reason, and returns how many it closed.
func (c *Client) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	var res api.ConnectionsResult
	err := c.call(ctx, "/disconnect", api.DisconnectRequest{User: user, Code: code, Reason: reason}, &res)
	return res.Connections, err
}

// Presence returns a page of channel's subscribers after the conn after ("": from the first);
// limit 0 asks for the server's default page. Next names the after of the following page.
func (c *Client) Presence(ctx context.Context, channel, after string, limit int) (PresenceResult, error) {
	var res PresenceResult
	err := c.call(ctx, "/presence", api.PresenceRequest{Channel: channel, After: after, Limit: limit}, &res)
	return res, err
}

// PresenceStats counts channel's subscribers: connections and distinct users.
func (c *Client) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	var res PresenceStats
	err := c.call(ctx, "/presence_stats", api.ChannelRequest{Channel: channel}, &res)
	return res, err
}

// History returns up to limit publications of channel after since (nil: the latest ones).
func (c *Client) History(ctx context.Context, channel string, since *Position, limit int) (HistoryResult, error) {
	var res HistoryResult
	err := c.call(ctx, "/history", api.HistoryRequest{Channel: channel, Since: since, Limit: limit}, &res)
	return res, err
}

// RemoveHistory forgets channel's history.
func (c *Client) RemoveHistory(ctx context.Context, channel string) error {
	return c.call(ctx, "/history_remove", api.ChannelRequest{Channel: channel}, &api.Empty{})
}

// Channels returns a page of the channels with subscribers whose names start with prefix,
// after the name after.
func (c *Client) Channels(ctx context.Context, prefix, after string, limit int) (ChannelsResult, error) {
	var res ChannelsResult
	err := c.call(ctx, "/channels", api.ChannelsRequest{Prefix: prefix, After: after, Limit: limit}, &res)
	return res, err
}

// Info describes the server's node.
func (c *Client) Info(ctx context.Context) (NodeInfo, error) {
	var res NodeInfo
	err := c.call(ctx, "/info", api.Empty{}, &res)
	return res, err
}
