package api

import (
	"net/http"
	"strconv"
	"strings"
)

// MetricsStatuses are the HTTP statuses Metrics counts one by one; the others share a last entry.
var MetricsStatuses = [...]int{http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized,
	http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// Endpoints names the API's endpoints as Metrics counts them, in api/openapi.yaml's order, then
// "unknown" for a path that is none of them: a bounded set whatever the requests' paths.
var Endpoints = func() []string {
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

// Metrics counts the API's answered requests: Metrics[e][s] is the requests to endpoint
// Endpoints[e] answered with status MetricsStatuses[s] (the last s: any other status).
type Metrics [][len(MetricsStatuses) + 1]uint64

// MetricsOf returns a snapshot of the counters of h, a handler New returned; false for any other.
func MetricsOf(h http.Handler) (Metrics, bool) {
	a, ok := h.(*apiHandler)
	if !ok {
		return nil, false
	}
	m := make(Metrics, len(a.counts))
	for e := range a.counts {
		for s := range a.counts[e] {
			m[e][s] = a.counts[e][s].Load()
		}
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

// count records one answer of endpoint index e.
func (a *apiHandler) count(e, status int) {
	s := len(MetricsStatuses)
	for i, st := range MetricsStatuses {
		if st == status {
			s = i
			break
		}
	}
	a.counts[e][s].Add(1)
}
