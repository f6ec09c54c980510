package broker

import (
	"fmt"
	"strings"
)

// CheckNamespaces reports the first fault of a list of namespaces, naming it by its index and
// prefix: an empty prefix (a broker's own HistorySize and HistoryTTL are the defaults for the
// channels no namespace matches), a prefix listed twice, a negative HistorySize or HistoryTTL.
// Brokers refuse to start with such a list; a configuration loader can call it first.
func CheckNamespaces(ns []Namespace) error {
	seen := make(map[string]int, len(ns))
	for i, n := range ns {
		switch {
		case n.Prefix == "":
			return fmt.Errorf("broker: namespace %d: empty prefix (the broker's own history options are the default)", i)
		case n.HistorySize < 0:
			return fmt.Errorf("broker: namespace %d (%q): HistorySize %d is negative (0 keeps no history)", i, n.Prefix, n.HistorySize)
		case n.HistoryTTL < 0:
			return fmt.Errorf("broker: namespace %d (%q): HistoryTTL %v is negative (0 is the broker's default)", i, n.Prefix, n.HistoryTTL)
		}
		if j, dup := seen[n.Prefix]; dup {
			return fmt.Errorf("broker: namespace %d (%q): the prefix of namespace %d too", i, n.Prefix, j)
		}
		seen[n.Prefix] = i
	}
	return nil
}

// MatchNamespace returns the index in ns of the namespace whose prefix is the longest that
// channel starts with, or -1 when none matches. It compares channel with every prefix: a broker
// calls it once per stream it creates or per publication, with the few namespaces of a
// configuration.
func MatchNamespace(ns []Namespace, channel string) int {
	best := -1
	for i := range ns {
		if strings.HasPrefix(channel, ns[i].Prefix) && (best < 0 || len(ns[i].Prefix) > len(ns[best].Prefix)) {
			best = i
		}
	}
	return best
}
