package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MetricsStatuses are the HTTP statuses Metrics counts one by one; the others share a last entry.
var MetricsStatuses = [...]int{http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized,
	http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// MetricsEndpoints names the API's endpoints as Metrics counts them (Endpoints without the
// slash), then "unknown" for a path that is none of them: a bounded set whatever the requests'
// paths.
var MetricsEndpoints = func() []string {
	names := make([]string, 0, len(routes)+1)
	for _, rt := range routes {
		names = append(names, strings.TrimPrefix(rt.path, "/"))
	}
	return append(names, "unknown")
}()

// MetricsStatusLabel names entry i of a Metrics row: the status in decimal, or "other".
func MetricsStatusLabel(i int) string {
	if i < len(MetricsStatuses) {
		return strconv.Itoa(MetricsStatuses[i])
	}
	return "other"
}

// Metrics counts the API's answered requests and the time they took.
type Metrics struct {
	// Requests[e][s] is the requests to endpoint MetricsEndpoints[e] answered with status
	// MetricsStatuses[s] (the last s: any other status).
	Requests [][len(MetricsStatuses) + 1]uint64
	// Seconds[e] is the total time of the requests counted in Requests[e], from the handler's
	// start to its return (the answer written): the sum of a summary whose count is Calls(e).
	// A request's time is in Seconds before it is in Requests, so a snapshot never counts a
	// request without its time.
	Seconds []float64
}

// Calls returns how many requests endpoint MetricsEndpoints[e] answered, whatever the status.
func (m Metrics) Calls(e int) uint64 {
	var n uint64
	for _, c := range m.Requests[e] {
		n += c
	}
	return n
}

// MetricsOf returns a snapshot of the counters of h, a handler New returned; false for any other.
func MetricsOf(h http.Handler) (Metrics, bool) {
	a, ok := h.(*apiHandler)
	if !ok {
		return Metrics{}, false
	}
	m := Metrics{Requests: make([][len(MetricsStatuses) + 1]uint64, len(a.counts)), Seconds: make([]float64, len(a.counts))}
	// The counts first, then the times: count adds a request's time before its count.
	for e := range a.counts {
		for s := range a.counts[e] {
			m.Requests[e][s] = a.counts[e][s].Load()
		}
	}
	for e := range a.nanos {
		m.Seconds[e] = float64(a.nanos[e].Load()) / 1e9
	}
	return m, true
}

// statusWriter records the status of an answer, for the counters.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// count records one answer of endpoint index e, with status, to a request the handler began at
// start (time.Now: the monotonic clock measures it). Its time is added before its count.
func (a *apiHandler) count(e, status int, start time.Time) {
	s := len(MetricsStatuses)
	for i, st := range MetricsStatuses {
		if st == status {
			s = i
			break
		}
	}
	a.nanos[e].Add(uint64(max(time.Since(start), 0)))
	a.counts[e][s].Add(1)
}
