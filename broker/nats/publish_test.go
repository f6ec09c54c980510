package nats

import "testing"

func TestParseAck(t *testing.T) {
	for _, c := range []struct {
		in      string
		seq     uint64
		errCode int
		bad     bool
	}{
		{`{"stream":"WSGATE","seq":42}`, 42, 0, false},
		{`{"stream":"WSGATE", "domain":"x","seq":7,"duplicate":false}`, 7, 0, false},
		{`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"WSGATE","seq":0}`, 0, 10071, false},
		{`{"stream":"WSGATE","seq":0}`, 0, 0, true},
		{`not json`, 0, 0, true},
	} {
		ack, err := parseAck([]byte(c.in))
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%s: accepted as %+v", c.in, ack)
			}
		case err != nil:
			t.Errorf("%s: %v", c.in, err)
		case ack.Seq != c.seq || (c.errCode == 0) != (ack.Error == nil) || ack.Error != nil && ack.Error.ErrCode != c.errCode:
			t.Errorf("%s: %+v", c.in, ack)
		}
	}
}

// TestParseAckDuplicate: a duplicate's acknowledgement (as nats-server writes it, with a space)
// is not read as a new publication.
func TestParseAckDuplicate(t *testing.T) {
	ack, err := parseAck([]byte(`{"stream":"WSGATE","seq":42,"duplicate": true}`))
	if err != nil || !ack.Duplicate || ack.Seq != 42 {
		t.Fatalf("%+v %v", ack, err)
	}
}
