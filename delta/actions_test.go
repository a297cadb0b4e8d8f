package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestActionsRoundTrip parses varied log lines, writes them back, and checks
// the result against a golden file and that it parses to the same actions.
func TestActionsRoundTrip(t *testing.T) {
	in, err := os.ReadFile("testdata/actions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	acts, err := ParseActions(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalActions(acts)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "actions.golden.jsonl", out)
	again, err := ParseActions(out)
	if err != nil {
		t.Fatal(err)
	}
	out2, err := MarshalActions(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("second round trip differs:\n%s\n%s", out, out2)
	}
	kinds := []string{"commitInfo", "protocol", "protocol", "metaData", "metaData", "add", "add", "remove", "remove",
		"txn", "cdc", "domainMetadata", "checkpointMetadata", "sidecar", "add"}
	for i, a := range acts {
		if a.Kind() != kinds[i] {
			t.Errorf("action %d kind %q, want %q", i, a.Kind(), kinds[i])
		}
	}
	ci := acts[0].CommitInfo
	if ci.OperationParameters["n"] != "3" || string(ci.Extra["job"]) != `{"jobId":"job_id_0"}` || *ci.ReadVersion != -1 {
		t.Errorf("commitInfo = %+v", ci)
	}
	if acts[6].Add.DeletionVector != nil || acts[14].Add.DeletionVector == nil {
		t.Errorf("deletion vectors: %s / %s", acts[6].Add.DeletionVector, acts[14].Add.DeletionVector)
	}
}

func TestParseActionsErrors(t *testing.T) {
	cases := []string{
		`not json`,
		`{}`,
		`{"add":{"path":"a"},"remove":{"path":"a"}}`,
		`{"add":{"path":1}}`,
		`{"txn":{"appId":"a","version":"x"}}`,
		`null`,
		`[1]`,
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			if _, err := ParseActions([]byte(c)); !errors.Is(err, ErrInvalidLog) {
				t.Fatalf("ParseActions(%s) = %v, want ErrInvalidLog", c, err)
			}
		})
	}
}

func TestSchemaRoundTrip(t *testing.T) {
	cases := []string{
		`{"type":"struct","fields":[{"name":"a","type":"integer","nullable":false,"metadata":{}},{"name":"b","type":{"type":"struct","fields":[{"name":"d","type":"integer","nullable":false,"metadata":{}}]},"nullable":true,"metadata":{}},{"name":"c","type":{"type":"array","elementType":"integer","containsNull":false},"nullable":true,"metadata":{}},{"name":"e","type":{"type":"array","elementType":{"type":"struct","fields":[{"name":"d","type":"integer","nullable":false,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},{"name":"f","type":{"type":"map","keyType":"string","valueType":"string","valueContainsNull":true},"nullable":true,"metadata":{}}]}`,
		`{"type":"struct","fields":[{"name":"d","type":"decimal(38,18)","nullable":true,"metadata":{"comment":"x","delta.columnMapping.id":1}},{"name":"t","type":"timestamp_ntz","nullable":true,"metadata":{}}]}`,
	}
	for _, c := range cases {
		s, err := ParseSchema(c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c {
			t.Errorf("round trip:\n got %s\nwant %s", b, c)
		}
	}
	if p, s, ok := PrimitiveType("decimal(38,18)").Decimal(); !ok || p != 38 || s != 18 {
		t.Errorf("Decimal() = %d, %d, %v", p, s, ok)
	}
	for _, bad := range []string{``, `{"type":"array","elementType":"long"}`, `{"type":"struct","fields":[{"name":"x","type":"uint8"}]}`, `{"type":"struct","fields":[{"type":"long"}]}`} {
		if _, err := ParseSchema(bad); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("ParseSchema(%q) = %v, want ErrInvalidSchema", bad, err)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	cases := []struct{ in, root, want string }{
		{"a/b.parquet", "", "a/b.parquet"},
		{"a%20b/c%2Dd.parquet", "", "a b/c-d.parquet"},
		{"file:/some/p", "", "/some/p"},
		{"file:///some/p", "", "/some/p"},
		{"/some/p", "", "/some/p"},
		{"file:/some/with%20space/p@%23h", "", "/some/with space/p@#h"},
		{"/tbl/x/y.parquet", "/tbl", "x/y.parquet"},
		{"file:///tbl/x/y.parquet", "/tbl", "x/y.parquet"},
		{"../other/f.parquet", "/w/tbl", "/w/other/f.parquet"},
		{"s3://bucket/a%20b/c", "", "s3://bucket/a b/c"},
		{"./a//b.parquet", "", "a/b.parquet"},
		{"a/./b.parquet", "/tbl", "a/b.parquet"},
		{"a/../b.parquet", "/tbl", "b.parquet"},
		{"a/b/", "", "a/b"},
		{"..", "/w/tbl", "/w"},
		{"day=2024-01-01/part-0.parquet", "/tbl", "day=2024-01-01/part-0.parquet"},
		{"c:x", "", "c:x"},
		{`a\b`, "", `a\b`},
	}
	for _, tc := range cases {
		// The shortcut for plain paths must agree with the full rules.
		if got := canonicalPath(tc.in, tc.root); got != tc.want {
			t.Errorf("canonicalPath(%q, %q) = %q, want %q", tc.in, tc.root, got, tc.want)
		}
		if got := CanonicalPath(tc.in, tc.root); got != tc.want {
			t.Errorf("CanonicalPath(%q, %q) = %q, want %q", tc.in, tc.root, got, tc.want)
		}
		if enc := encodeCanonical(tc.want); CanonicalPath(enc, "") != tc.want {
			t.Errorf("encodeCanonical(%q) = %q does not canonicalize back", tc.want, enc)
		}
	}
}

// TestMarshalActionsCompactLines checks that MarshalActions, which calls
// Action.MarshalJSON directly, writes each action as one compact line, byte
// for byte what json.Marshal (which re-compacts) writes.
func TestMarshalActionsCompactLines(t *testing.T) {
	rv, blind, ict := int64(4), true, int64(1700000000001)
	tests := []struct {
		name string
		a    Action
	}{
		{"commitInfo with extras", Action{CommitInfo: &CommitInfo{Timestamp: 1700000000000, InCommitTimestamp: &ict,
			Operation: "WRITE", OperationParameters: map[string]string{"mode": "<Append> & more"}, ReadVersion: &rv,
			IsolationLevel: "Serializable", IsBlindAppend: &blind, EngineInfo: "plantlake-delta",
			Extra: map[string]json.RawMessage{"txnId": json.RawMessage(`"abc"`), "nested": json.RawMessage("{\n  \"a\": [1, 2],\n  \"b\": \"<x>\"\n}")}}}},
		{"commitInfo empty", Action{CommitInfo: &CommitInfo{}}},
		{"add with stats", func() Action {
			a := addAction("day=2024-01-01/a b&c.parquet", "2024-01-01")
			a.Add.Stats = `{"numRecords":1}`
			return a
		}()},
		{"txn", Action{Txn: &Txn{AppID: "ingest/topic/0", Version: 7}}},
		{"unknown, pretty-printed", Action{Other: json.RawMessage("{\n  \"future\": {\"x\": \"<y>\"}\n}")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalActions([]Action{tt.a})
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if !bytes.Equal(got, want) {
				t.Errorf("MarshalActions:\n%s\njson.Marshal:\n%s", got, want)
			}
			if bytes.Count(got, []byte("\n")) != 1 {
				t.Errorf("want one line, got %q", got)
			}
			back, err := ParseActions(got)
			if err != nil || len(back) != 1 || back[0].Kind() != tt.a.Kind() {
				t.Errorf("ParseActions: %v, %d actions", err, len(back))
			}
		})
	}
}
