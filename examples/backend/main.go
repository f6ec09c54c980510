// Command backend is the application behind wsgate in the README's walk-through: it knows its
// users by a signed session cookie, tells wsgate who a connection is (auth.connect_url), and
// publishes through wsgate's API. Run wsgate with
//
//	WSGATE_API_KEY=dev-key-0123456789 wsgate -connect-url http://localhost:9000/wsgate/connect -api-path /api
//
// then open http://localhost:9000/login?name=alice and the chat page.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log"
	"net/http"
	"strings"
	"unicode"

	"github.com/wsgate/wsgate/client/apiclient"
)

var secret = []byte("change me: the key that signs session cookies")

func main() {
	api, err := apiclient.New("http://localhost:8080/api", "dev-key-0123456789", nil)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe("localhost:9000", backend(api, "http://localhost:8080/chat.html")))
}

// sign makes a session cookie's value: the name and its HMAC, so that no one can forge another's.
func sign(name string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(name))
	return name + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func backend(api *apiclient.Client, chat string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { // a real app checks a password
		name := r.URL.Query().Get("name") // letters and digits: "#"+name must be this user's channel only
		if name == "" || len(name) > 32 || strings.ContainsFunc(name, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) }) {
			http.Error(w, "a name is 1-32 letters and digits", http.StatusBadRequest)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: sign(name), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		data, _ := json.Marshal(map[string]string{"text": name + " logged in"})
		_, _ = api.Publish(r.Context(), "chat:lobby", data, "")
		http.Redirect(w, r, chat, http.StatusSeeOther)
	})
	mux.HandleFunc("POST /wsgate/connect", func(w http.ResponseWriter, r *http.Request) {
		var name string
		c, err := r.Cookie("session") // wsgate forwards the browser's cookies
		if err == nil {
			name, _, _ = strings.Cut(c.Value, ".")
		}
		if name == "" || !hmac.Equal([]byte(c.Value), []byte(sign(name))) { // a forged cookie stops here
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 109, "message": "log in first"}})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"user": name,
			"info": map[string]string{"name": name}, "channels": []string{"#" + name}}})
	})
	return mux
}
