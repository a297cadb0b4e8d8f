package identity_test

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/servicekit/identity"
)

func sha(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

var example = `{
  "identities": [
    {"name": "ingest", "tokens": ["ingest-token"], "scopes": ["read"],
     "commit": [{"tables": "raw.*", "app_ids": "ingest/*"}]},
    {"name": "deserialize", "tokens": ["` + sha("deser-token") + `"], "scopes": ["read"],
     "commit": [{"tables": "bronze.plant_sensor_readings", "app_ids": "deserialize/?"},
                {"tables": "bronze.*"}]},
    {"name": "ops", "certificate_names": ["ops.plant.example"], "scopes": ["read", "operate", "maintain"]},
    {"name": "root", "tokens": ["root-token"], "certificate_names": ["spiffe://plant/root"], "scopes": ["admin"]}
  ]
}`

func TestScopesAndGrants(t *testing.T) {
	set, err := identity.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	ingest, deser, root := set.ByToken("ingest-token"), set.ByToken("deser-token"), set.ByToken("root-token")
	ops := set.ByCertificate(&x509.Certificate{Subject: pkix.Name{CommonName: "someone"}, DNSNames: []string{"ops.plant.example"}})
	for name, id := range map[string]*identity.Identity{"ingest": ingest, "deserialize": deser, "ops": ops, "root": root} {
		if id == nil || id.Name != name {
			t.Fatalf("lookup of %s = %+v", name, id)
		}
	}
	if set.ByToken("nope") != nil || set.ByToken("") != nil || set.ByToken(sha("deser-token")) != nil {
		t.Error("an unknown token (or the hash itself) found an identity")
	}
	uri, _ := url.Parse("spiffe://plant/root")
	if got := set.ByCertificate(&x509.Certificate{URIs: []*url.URL{uri}}); got != root {
		t.Errorf("URI name found %v, want root", got)
	}

	scopes := []struct {
		id    *identity.Identity
		scope identity.Scope
		want  bool
	}{
		{ingest, identity.Read, true}, {ingest, identity.Commit, true}, {ingest, identity.Maintain, false},
		{ingest, identity.Operate, false}, {ingest, identity.Admin, false},
		{ops, identity.Read, true}, {ops, identity.Operate, true}, {ops, identity.Maintain, true}, {ops, identity.Commit, false},
		{root, identity.Admin, true}, {root, identity.Commit, true}, {root, identity.Operate, true},
		{nil, identity.Read, false},
	}
	for _, tt := range scopes {
		if got := tt.id.Has(tt.scope); got != tt.want {
			t.Errorf("%v.Has(%s) = %v, want %v", tt.id, tt.scope, got, tt.want)
		}
	}

	commits := []struct {
		id      *identity.Identity
		table   string
		appIDs  []string
		wantErr string // "" means allowed
	}{
		{ingest, "raw.plant_sensor_readings", []string{"ingest/plant_sensor_readings_raw/0", "ingest/x/5"}, ""},
		{ingest, "raw.plant_sensor_readings", nil, ""},
		{ingest, "bronze.plant_sensor_readings", nil, `identity "ingest" may not commit to table "bronze.plant_sensor_readings"`},
		{ingest, "rawx.t", nil, `may not commit to table "rawx.t"`},
		{ingest, "raw.t", []string{"ingest/a", "deserialize/raw"}, `may not write txn app id "deserialize/raw" to table "raw.t"`},
		{deser, "bronze.plant_sensor_readings", []string{"deserialize/1"}, ""},
		{deser, "bronze.plant_sensor_readings", []string{"deserialize/12"}, `may not write txn app id "deserialize/12"`},
		{deser, "bronze.dead_letters", nil, ""},
		{deser, "bronze.dead_letters", []string{"deserialize/1"}, `may not write txn app id "deserialize/1"`},
		{ops, "raw.t", nil, `may not commit to table`},
		{root, "any.thing", []string{"whatever"}, ""},
		{nil, "raw.t", nil, "no identity"},
	}
	for _, tt := range commits {
		err := tt.id.MayCommit(tt.table, tt.appIDs)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%v MayCommit(%s, %v) = %v, want nil", tt.id, tt.table, tt.appIDs, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, identity.ErrPermissionDenied)):
			t.Errorf("%v MayCommit(%s, %v) = %v, want ErrPermissionDenied with %q", tt.id, tt.table, tt.appIDs, err, tt.wantErr)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"unknown field", `{"identities":[{"name":"a","tokens":["t"],"scope":["read"]}]}`, `unknown field "scope"`},
		{"no name", `{"identities":[{"tokens":["t"]}]}`, "no name"},
		{"duplicate name", `{"identities":[{"name":"a","tokens":["t"]},{"name":"a","tokens":["u"]}]}`, "name used twice"},
		{"nothing proves it", `{"identities":[{"name":"a","scopes":["read"]}]}`, "nothing proves this identity"},
		{"unknown scope", `{"identities":[{"name":"a","tokens":["t"],"scopes":["write"]}]}`, `unknown scope "write"`},
		{"commit as a scope", `{"identities":[{"name":"a","tokens":["t"],"scopes":["commit"]}]}`, `commit rights are given by`},
		{"empty table pattern", `{"identities":[{"name":"a","tokens":["t"],"commit":[{"app_ids":"x"}]}]}`, "commit[0].tables: empty pattern"},
		{"shared token", `{"identities":[{"name":"a","tokens":["t"]},{"name":"b","tokens":["` + sha("t") + `"]}]}`, `also a token of "a"`},
		{"token with space", `{"identities":[{"name":"a","tokens":["t t"]}]}`, "white space"},
		{"bad hash", `{"identities":[{"name":"a","tokens":["sha256:abc"]}]}`, "64 hex digits"},
		{"shared certificate name", `{"identities":[{"name":"a","certificate_names":["c"]},{"name":"b","certificate_names":["c"]}]}`, `"c" also names "a"`},
		{"trailing data", `{"identities":[]} {}`, "data after the JSON object"},
		{"not json", `identities: []`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.Parse([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestStoreReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.json")
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"identities":[{"name":"a","tokens":["one"],"scopes":["read"]}]}`)
	st, err := identity.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	before := st.Current()
	write(`{"identities":[{"name":"b","tokens":["two"],"scopes":["admin"]}]}`)
	if st.Current().ByToken("one") == nil {
		t.Fatal("the store changed before Reload")
	}
	if _, err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if st.Current().ByToken("one") != nil || st.Current().ByToken("two").Name != "b" {
		t.Fatalf("after Reload: %v", st.Current().Names())
	}
	if before.ByToken("one") == nil {
		t.Fatal("Reload changed the set a call in flight holds")
	}
	write(`{"identities":[{"name":"c"}]}`)
	if _, err := st.Reload(); err == nil {
		t.Fatal("Reload of a bad file succeeded")
	}
	if st.Current().ByToken("two") == nil {
		t.Fatal("a failed Reload dropped the identities in force")
	}
}
