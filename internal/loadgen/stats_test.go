package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

func TestRecorderPercentilesOnKnownData(t *testing.T) {
	r := NewRecorder()
	for i := 1; i <= 10000; i++ { // 1 µs .. 10 ms, uniformly; spread over every shard
		r.Record(i, time.Duration(i)*time.Microsecond)
	}
	l := summarize(r.Total())
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"p50", l.P50, 5000}, {"p90", l.P90, 9000}, {"p99", l.P99, 9900}, {"p99.9", l.P999, 9990},
		{"max", l.Max, 10000}, {"min", l.Min, 1}, {"mean", l.Mean, 5000.5},
	} {
		// 3 significant digits: within 0.1 % (plus the 1 µs lowest bucket).
		if math.Abs(tc.got-tc.want) > tc.want*0.001+1 {
			t.Errorf("%s = %.1f µs, want %.1f", tc.name, tc.got, tc.want)
		}
	}
	if l.Count != 10000 {
		t.Errorf("count %d", l.Count)
	}
	// The interval histogram holds the same, and is empty once taken.
	if n := r.TakeInterval().TotalCount(); n != 10000 {
		t.Errorf("interval count %d", n)
	}
	if n := r.TakeInterval().TotalCount(); n != 0 {
		t.Errorf("second interval count %d", n)
	}
	if n := r.Total().TotalCount(); n != 10000 {
		t.Errorf("total after intervals %d", n)
	}
}

func TestRecorderClampsOutOfRange(t *testing.T) {
	r := NewRecorder()
	r.Record(0, -time.Second)
	r.Record(0, 2*time.Hour)
	l := summarize(r.Total())
	if l.Count != 2 || l.Min > 1.001 || l.Max < 3.5e9 {
		t.Fatalf("%+v", l)
	}
}

func TestSpectrum(t *testing.T) {
	if spectrum(newHist()) != nil {
		t.Fatal("spectrum of nothing")
	}
	r := NewRecorder()
	for i := 1; i <= 1000; i++ {
		r.Record(0, time.Duration(i)*time.Millisecond)
	}
	sp := spectrum(r.Total())
	last := sp[len(sp)-1]
	if sp[0].Percentile != 0 || last.Percentile != 100 || math.Abs(last.Micros-1e6) > 1e3 {
		t.Fatalf("ends: %+v … %+v", sp[0], last)
	}
	for i := 1; i < len(sp); i++ {
		if sp[i].Percentile <= sp[i-1].Percentile || sp[i].Micros < sp[i-1].Micros {
			t.Fatalf("not increasing at %d: %+v then %+v", i, sp[i-1], sp[i])
		}
	}
	// 1000 samples resolve up to 99.9 %: -log10(1-q) ≤ 3.
	if q := sp[len(sp)-2].Percentile; q > 99.9+1e-9 || q < 99.8 {
		t.Fatalf("last finite percentile %v", q)
	}
}

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		xs   []uint64
		want float64
	}{
		{[]uint64{5, 5, 5, 5}, 1},
		{[]uint64{10, 0, 0, 0}, 0.25},
		{[]uint64{0, 0}, 1},
		{[]uint64{1, 3}, 16.0 / 20},
	} {
		if got := Jain(tc.xs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Jain(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestStamp(t *testing.T) {
	a, b := newPayload(32), newPayload(32)
	stamp(a, 1, 2)
	stamp(b, 1, 3)
	if bytes.Equal(a, b) || !strings.HasPrefix(string(a), "000001:0000000002:") {
		t.Fatalf("stamps: %q, %q", a, b)
	}
	short := newPayload(4)
	stamp(short, 1, 2) // fits what it can
	if string(short) != "0000" {
		t.Fatalf("short stamp: %q", short)
	}
}

func TestMismatchHint(t *testing.T) {
	err := mismatchError([]byte("hello done"), []byte("hello"), "")
	if !strings.Contains(err.Error(), `-suffix " done"`) {
		t.Fatalf("no hint: %v", err)
	}
	err = mismatchError([]byte("hellx"), []byte("hello"), "")
	if strings.Contains(err.Error(), "-suffix") {
		t.Fatalf("hint for a plain mismatch: %v", err)
	}
}

func TestPublicationDataRoundTrip(t *testing.T) {
	data := appendData(nil, 42, 1234567, 5)
	if string(data) != `{"seq":42,"t":1234567,"pad":"xxxxx"}` {
		t.Fatalf("data %s", data)
	}
	// A wsgate.v1 push as the server encodes it.
	frame := protocol.PubPush(protocol.Publication{Channel: "bench", Epoch: "x7Kq", Offset: 17, Data: data})
	var got []publication
	wsgateV1{}.scan(frame, func(p publication) { got = append(got, p) }, func(uint64, bool) { t.Fatal("reply") })
	if len(got) != 1 || got[0] != (publication{offset: 17, seq: 42, sent: 1234567, ok: true}) {
		t.Fatalf("wsgate scan: %+v of %s", got, frame)
	}
	var replies []uint64
	wsgateV1{}.scan([]byte(`{"id":9,"error":{"code":104,"message":"no"}}`), func(publication) { t.Fatal("pub") },
		func(id uint64, failed bool) {
			if !failed {
				t.Error("error reply read as success")
			}
			replies = append(replies, id)
		})
	wsgateV1{}.scan([]byte(`{"push":"ping"}`), func(publication) { t.Fatal("pub") }, func(uint64, bool) { t.Fatal("reply") })
	if len(replies) != 1 || replies[0] != 9 {
		t.Fatalf("replies %v", replies)
	}
}

func TestCentrifugoScan(t *testing.T) {
	// Centrifugo batches several pushes and replies in one frame, one per line, and pings with {}.
	frame := []byte(`{"push":{"channel":"bench","pub":{"data":{"seq":1,"t":10,"pad":""},"offset":3}}}` + "\n" +
		`{"id":5,"publish":{}}` + "\n" + `{}` + "\n" +
		`{"push":{"channel":"bench","pub":{"data":{"seq":2,"t":20,"pad":""},"offset":4}}}`)
	var pubs []publication
	var ids []uint64
	answer := centrifugo{}.scan(frame, func(p publication) { pubs = append(pubs, p) }, func(id uint64, failed bool) {
		if failed {
			t.Error("publish reply read as an error")
		}
		ids = append(ids, id)
	})
	if string(answer) != "{}" {
		t.Errorf("ping not answered: %q", answer)
	}
	want := []publication{{offset: 3, seq: 1, sent: 10, ok: true}, {offset: 4, seq: 2, sent: 20, ok: true}}
	if len(pubs) != 2 || pubs[0] != want[0] || pubs[1] != want[1] || len(ids) != 1 || ids[0] != 5 {
		t.Fatalf("pubs %+v ids %v", pubs, ids)
	}
	if b := (centrifugo{}).appendPublish(nil, 3, "bench", []byte(`{"a":1}`)); string(b) != `{"id":3,"publish":{"channel":"bench","data":{"a":1}}}` {
		t.Fatalf("publish frame %s", b)
	}
}

func TestIntField(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"a":12}`, 12, true}, {`{"a": -7,`, -7, true}, {`{"a":"x"}`, 0, false}, {`{"b":1}`, 0, false}, {`{"a":`, 0, false},
	} {
		if v, ok := intField([]byte(tc.in), `"a":`); v != tc.want || ok != tc.ok {
			t.Errorf("intField(%s) = %d, %v", tc.in, v, ok)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{Mode: ModeEcho, URL: "ws://127.0.0.1:1/ws"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"remote", func(c *Config) { c.URL = "ws://10.1.2.3/ws" }, "-allow-remote"},
		{"hostname", func(c *Config) { c.URL = "ws://example.com/ws" }, "not a loopback"},
		{"scheme", func(c *Config) { c.URL = "http://127.0.0.1/ws" }, "ws://"},
		{"conns", func(c *Config) { c.Conns = MaxConns + 1 }, "-c must be"},
		{"duration", func(c *Config) { c.Duration = time.Hour }, "-duration must be"},
		{"size", func(c *Config) { c.Size = -1 }, "-size must be"},
		{"window", func(c *Config) { c.Window = 5000 }, "-window must be"},
		{"rate", func(c *Config) { c.Rate = -1 }, "-rate must be"},
		{"fanout rate", func(c *Config) { c.Mode, c.Rate = ModeFanout, MaxPublishRate+1 }, "-rate must be"},
		{"source ips", func(c *Config) { c.SourceIPs = 300 }, "-source-ips must be"},
		{"source ips host", func(c *Config) { c.SourceIPs, c.URL = 2, "ws://localhost:1/ws" }, "IPv4 loopback"},
		{"protocol", func(c *Config) { c.Protocol = "mqtt" }, "-protocol"},
		{"mode", func(c *Config) { c.Mode = "flood" }, "unknown mode"},
	} {
		c := ok
		tc.edit(&c)
		c = c.WithDefaults()
		err := c.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	c := ok.WithDefaults()
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	c.URL, c.AllowRemote = "wss://example.com/ws", true
	if err := c.Check(); err != nil {
		t.Fatalf("remote allowed: %v", err)
	}
}

func TestSourceIPsFor(t *testing.T) {
	per := ephemeralPorts() * 3 / 4
	if n := sourceIPsFor(10); n != 1 {
		t.Errorf("10 conns: %d addresses", n)
	}
	if n := sourceIPsFor(per + 1); n != 2 {
		t.Errorf("%d conns: %d addresses", per+1, n)
	}
}

func TestChartSVG(t *testing.T) {
	c := Chart{Title: "a <b> & c", XLabel: "x", YLabel: "y", LogY: true, XTicks: PercentileTicks,
		Lines: []Line{LatencyLine("one", []SpectrumPoint{{0, 100}, {90, 200}, {99, 900}, {100, 1500}})}}
	s := c.SVG()
	for _, want := range []string{"<svg", "a &lt;b&gt; &amp; c", "<polyline", "90%", "99%"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(s, "99.99%") { // the axis stops at the tick after the data
		t.Error("x axis runs past the data")
	}
	empty := (&Chart{Title: "none"}).SVG()
	if !strings.Contains(empty, "no data") {
		t.Error("empty chart")
	}
	if got := niceStep(0.3); got != 0.5 {
		t.Errorf("niceStep(0.3) = %v", got)
	}
}
