package main

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// web holds the demo pages (the console, index.html, and the chat, chat.html) and the browser
// clients they run on (js/wsgate.js and js/wsgate-pubsub.js, each with its types in a .d.ts):
// plain HTML, CSS and ES modules, no build step and nothing from elsewhere.
//
//go:embed web
var web embed.FS

// The browser client's stable paths: the ES module and its TypeScript declarations.
const (
	clientPath      = "/js/wsgate.js"
	clientTypesPath = "/js/wsgate.d.ts"
)

// pageCSP lets the page load its own script, style and WebSocket only: no inline script, nothing
// from another origin, no framing. ('self' covers ws:// and wss:// to the same host in CSP Level 3.)
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageHandler serves the embedded files of web/ (index.html at /) with security headers.
func pageHandler() http.Handler {
	files, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // embedded files have no modification time to revalidate with
		if strings.HasPrefix(r.URL.Path, "/js/") {
			// The client is public: pages of other origins may import it, and module scripts need CORS.
			h.Set("Access-Control-Allow-Origin", "*")
		}
		switch {
		case strings.HasSuffix(r.URL.Path, ".d.ts"):
			// Not the system's guess for .ts (video/mp2t, or Qt Linguist on Debian).
			h.Set("Content-Type", "application/typescript; charset=utf-8")
		case strings.HasPrefix(r.URL.Path, "/js/") && strings.HasSuffix(r.URL.Path, ".js"):
			// Each client module has its types beside it, for Deno and other TypeScript-aware loaders.
			h.Set("X-TypeScript-Types", strings.TrimSuffix(r.URL.Path, ".js")+".d.ts")
		}
		fileServer.ServeHTTP(w, r)
	})
}
