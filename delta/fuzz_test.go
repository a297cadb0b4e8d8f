package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// FuzzParseLog feeds arbitrary bytes to the commit-file parser, log replay,
// the schema parser and the Parquet checkpoint reader: none may panic.
func FuzzParseLog(f *testing.F) {
	if b, err := os.ReadFile("testdata/actions.jsonl"); err == nil {
		f.Add(b)
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"add":{"path":"%zz","partitionValues":null,"deletionVector":{"offset":"x"}}}`))
	f.Add([]byte(`{"metaData":{"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":{\"type\":\"map\"}}]}"}}`))
	// Spark-written checkpoints: one the fast column decoders read, one with
	// deletion vectors that goes through Arrow.
	for _, p := range []string{"checkpoint/delta/_delta_log/00000000000000000010.checkpoint.parquet",
		"dv-partitioned-with-checkpoint/delta/_delta_log/00000000000000000010.checkpoint.parquet"} {
		b, err := os.ReadFile(goldenDir + "/" + p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	st := buildHistory(f, 3)
	if _, err := Open(st).Checkpoint(context.Background(), -1); err != nil {
		f.Fatal(err)
	}
	if cp, err := st.ReadFile(context.Background(), CheckpointPath(3)); err == nil {
		f.Add(cp)
		f.Add(cp[:len(cp)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		acts, err := ParseActions(data)
		if err == nil {
			st := newReplayState("/root")
			st.applyCommit(acts)
			_, _ = st.snapshot(0)
			if _, err := MarshalActions(acts); err != nil {
				t.Fatalf("parsed actions do not marshal: %v", err)
			}
			for _, a := range acts {
				if a.MetaData != nil {
					if s, err := ParseSchema(a.MetaData.SchemaString); err == nil {
						if _, err := json.Marshal(s); err != nil {
							t.Fatalf("parsed schema does not marshal: %v", err)
						}
					}
				}
			}
		}
		_, _ = ParseSchema(string(data))
		if p := string(data); plainRelative(p) && canonicalPath(p, "/root") != p {
			t.Fatalf("plainRelative(%q) but its canonical path is %q", p, canonicalPath(p, "/root"))
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = parquetActions(context.Background(), bytes.NewReader(data))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("parquet reader hangs on %d bytes", len(data))
		}
	})
}
