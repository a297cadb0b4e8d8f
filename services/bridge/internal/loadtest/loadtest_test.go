package loadtest

import (
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		id  int
		pub time.Time
	}{
		{0, time.UnixMicro(0)},
		{1, time.UnixMicro(1625000000123456)},
		{99_999_999, time.Now().Truncate(time.Microsecond)},
	}
	for _, tc := range tests {
		id, pub, ok := ParseID(Payload(tc.id, tc.pub))
		if !ok || id != tc.id || !pub.Equal(tc.pub) {
			t.Errorf("ParseID(Payload(%d, %v)) = %d, %v, %v", tc.id, tc.pub, id, pub, ok)
		}
	}
}

func TestParseIDRejects(t *testing.T) {
	for _, p := range []string{"", "{}", `{"id":x,"pub_us":1,`, `{"id":1,"pub_us":`, `{"id":1}`} {
		if _, _, ok := ParseID([]byte(p)); ok {
			t.Errorf("ParseID(%q) accepted", p)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(Payload(42, time.UnixMicro(7)))
	f.Add([]byte(`{"id":-1,"pub_us":-5,`))
	f.Fuzz(func(t *testing.T, p []byte) {
		id, pub, ok := ParseID(p)
		if !ok {
			return
		}
		if id2, pub2, ok2 := ParseID(Payload(id, pub)); !ok2 || id2 != id || !pub2.Equal(pub) {
			t.Errorf("round trip of %d, %v failed", id, pub)
		}
	})
}
