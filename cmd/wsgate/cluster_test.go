package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterDefaults(t *testing.T) {
	o := defaultOptions()
	if c := o.cluster; c.name != "wsgate" || o.hub.PresenceTTL.String() != "5s" || c.replicas != 0 || c.embedded() {
		t.Errorf("cluster defaults: %+v", c)
	}
	for _, tc := range []struct {
		c    clusterOptions
		want int
	}{
		{clusterOptions{natsURLs: []string{"nats://a:4222"}}, 1},
		{clusterOptions{natsURLs: []string{"nats://a:4222"}, replicas: 3}, 3},
		{clusterOptions{listen: ":6222", peers: []string{"b:6222"}}, 2},
		{clusterOptions{listen: ":6222", peers: []string{"b:6222", "c:6222"}}, 3},
		{clusterOptions{listen: ":6222", peers: []string{"b:6222", "c:6222", "d:6222", "e:6222"}}, 3},
		{clusterOptions{listen: ":6222", peers: []string{"b:6222", "c:6222"}, replicas: 1}, 1},
	} {
		if got := tc.c.replicaCount(); got != tc.want {
			t.Errorf("%+v: %d replicas, want %d", tc.c, got, tc.want)
		}
	}
	host, _ := os.Hostname()
	for _, tc := range []struct {
		c          clusterOptions
		addr, want string
	}{
		{clusterOptions{node: "n1", listen: ":6222"}, ":8080", "n1"},
		{clusterOptions{listen: "10.0.0.1:6222"}, ":8080", host + "-6222"},
		{clusterOptions{}, ":8080", host + "-8080"},
	} {
		if got := tc.c.nodeName(tc.addr); got != tc.want {
			t.Errorf("%+v, -addr %s: node %q, want %q", tc.c, tc.addr, got, tc.want)
		}
	}
	if got := (&clusterOptions{}).nodeName("127.0.0.1:0"); !strings.HasPrefix(got, host+"-") || got == host+"-0" {
		t.Errorf("random port: node %q, want the host and the process ID", got)
	}
	c := clusterOptions{}
	if a, b := c.dataDirFor("h-6222"), c.dataDirFor("h-6223"); a == b || filepath.Base(a) != "h-6222" {
		t.Errorf("default data dirs %q and %q: want one per node", a, b)
	}
	if d := c.dataDirFor(`a/b:c`); filepath.Base(d) != "a_b_c" {
		t.Errorf("data dir of node a/b:c is %q", d)
	}
	c.dataDir = "/srv/wsgate"
	if d := c.dataDirFor("n1"); d != "/srv/wsgate" {
		t.Errorf("-data-dir /srv/wsgate gives %q", d)
	}
}
