package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the demo page: plain HTML, CSS and one script, no build step and nothing from elsewhere.
//
//go:embed web
var web embed.FS

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
		fileServer.ServeHTTP(w, r)
	})
}
