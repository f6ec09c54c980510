package gateway

import (
	"cmp"
	"slices"
	"strings"

	"github.com/wsgate/wsgate/hub"
)

// rules are a namespace's ChannelRules resolved: every default applied.
type rules struct {
	prefix    string
	publish   bool
	subscribe string // SubscribeOpen, SubscribeToken or SubscribeBackend
	opts      hub.ChannelOptions
}

func resolve(prefix string, r *ChannelRules) rules {
	on := func(b *bool) bool { return b == nil || *b }
	return rules{
		prefix:    prefix,
		publish:   on(r.Publish),
		subscribe: cmp.Or(r.Subscribe, SubscribeOpen),
		opts: hub.ChannelOptions{
			NoPresence:  !on(r.Presence),
			NoJoinLeave: !on(r.JoinLeave) || !on(r.Presence),
			NoHistory:   !on(r.History),
			NoRecovery:  !on(r.Recovery),
		},
	}
}

// namespaces finds a channel's rules: the longest matching prefix, else the default. The list
// is bounded by MaxNamespaces; a lookup costs one prefix comparison per namespace at most.
type namespaces struct {
	list []rules // longest prefix first
	def  rules
}

func newNamespaces(c *Config) *namespaces {
	n := &namespaces{def: resolve("", &c.Channels)}
	for i := range c.Namespaces {
		n.list = append(n.list, resolve(c.Namespaces[i].Prefix, &c.Namespaces[i].ChannelRules))
	}
	slices.SortStableFunc(n.list, func(a, b rules) int { return len(b.prefix) - len(a.prefix) })
	return n
}

// of returns the rules of channel.
func (n *namespaces) of(channel string) *rules {
	for i := range n.list {
		if strings.HasPrefix(channel, n.list[i].prefix) {
			return &n.list[i]
		}
	}
	return &n.def
}

// userChannel reports whether channel is a user channel ('#' in its name) and, if so, whether
// user is one of the users it lists after the '#'. The anonymous user "" is in none.
func userChannel(channel, user string) (isUser, member bool) {
	i := strings.IndexByte(channel, '#')
	if i < 0 {
		return false, false
	}
	if user == "" {
		return true, false
	}
	for rest := channel[i+1:]; ; {
		name, after, more := strings.Cut(rest, ",")
		if name == user {
			return true, true
		}
		if !more {
			return true, false
		}
		rest = after
	}
}
