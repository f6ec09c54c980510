package api

// Routes lists the paths the API serves under its base, for the test that holds them and
// api/openapi.yaml together.
func Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.path
	}
	return out
}
