package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// runToken is "wsgate token": mint an HS256 development token from the configured secret
// (WSGATE_JWT_HMAC_SECRET, -jwt-hmac-secret-file, or the config file's auth.jwt), print it.
func runToken(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	o := defaultOptions()
	fs := flag.NewFlagSet("wsgate token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	user := fs.String("user", "", "the token's `user` (sub), required")
	ttl := fs.Duration("ttl", time.Hour, "how long the token lasts")
	info := fs.String("info", "", "`JSON` object others see beside the user in presence, e.g. '{\"name\":\"Alice\"}'")
	channels := fs.String("channels", "", "comma-separated `channels` the server subscribes the connection to at connect")
	channel := fs.String("channel", "", "mint a channel token for this `channel` instead (subscribe: token namespaces)")
	fs.StringVar(&o.configFile, "config", "", "YAML config `file` holding auth.jwt (flags and env win over it)")
	fs.Func("jwt-hmac-secret-file", "`file` holding the HS256 secret (or env WSGATE_JWT_HMAC_SECRET)", func(s string) error {
		if o.gwSet == nil {
			o.gwSet = map[string]string{}
		}
		o.gwSet["auth.jwt.hmac_secret_file"] = s
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: wsgate token -user USER [-ttl 1h] [-info JSON] [-channels a,b] [-channel CH] [-config FILE]\n\n"+
				"Prints an HS256 token signed with the configured secret, for development and tests.\n\nFlags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *user == "" {
		return usageError{errors.New("-user is required")}
	}
	if *ttl <= 0 {
		return usageError{errors.New("-ttl must be positive")}
	}
	var fileTree map[string]any
	if o.configFile != "" {
		t, err := loadFile(o.configFile)
		if err != nil {
			return usageError{err}
		}
		fileTree = map[string]any{}
		for _, s := range gatewaySections() {
			if v, ok := t[s]; ok {
				fileTree[s] = v
			}
		}
	}
	cfg, err := gatewayConfig(fileTree, &o, env)
	if err != nil {
		return usageError{err}
	}
	secret, err := cfg.Auth.JWT.Secret()
	if err != nil {
		return usageError{err}
	}
	if secret == nil {
		return usageError{errors.New("no HS256 secret: set WSGATE_JWT_HMAC_SECRET, -jwt-hmac-secret-file, or auth.jwt in -config")}
	}
	var rawInfo json.RawMessage
	if *info != "" {
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(*info)); err != nil || !strings.HasPrefix(b.String(), "{") {
			return usageError{errors.New("-info must be a JSON object")}
		}
		rawInfo = b.Bytes()
	}
	chs, _ := parseList(*channels)
	var tok string
	if *channel != "" {
		tok, err = mintChannelToken(secret, *user, *channel, *ttl)
	} else {
		tok, err = mintToken(secret, *user, *ttl, rawInfo, chs)
	}
	if err != nil {
		return usageError{err}
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
