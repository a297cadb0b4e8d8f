package warehouse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in      string
		want    Name
		wantErr error
	}{
		{in: "raw.plant_sensor_readings", want: Name{"raw", "plant_sensor_readings"}},
		{in: "_a.b9", want: Name{"_a", "b9"}},
		{in: "raw", wantErr: ErrBadName},
		{in: "raw.", wantErr: ErrBadName},
		{in: ".t", wantErr: ErrBadName},
		{in: "a.b.c", wantErr: ErrBadName},
		{in: "../etc.passwd", wantErr: ErrBadName},
		{in: "raw./x", wantErr: ErrBadName},
		{in: "Raw.t", wantErr: ErrBadName},
		{in: "9a.t", wantErr: ErrBadName},
		{in: "a.t-1", wantErr: ErrBadName},
		{in: "a.t\x00", wantErr: ErrBadName},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseName(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseName(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ParseName(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDataPath(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{in: "part-0001.parquet", want: "part-0001.parquet"},
		{in: "ingest_date=2024-01-01/part-1.parquet", want: "ingest_date=2024-01-01/part-1.parquet"},
		{in: "d=a%20b/part-1.parquet", want: "d=a b/part-1.parquet"},
		{in: "", wantErr: ErrBadPath},
		{in: "../x.parquet", wantErr: ErrBadPath},
		{in: "a/../../x.parquet", wantErr: ErrBadPath},
		{in: "%2e%2e/x.parquet", wantErr: ErrBadPath},
		{in: "a/%2E%2E/%2e%2e/x", wantErr: ErrBadPath},
		{in: "/etc/passwd", wantErr: ErrBadPath},
		{in: "%2Fetc/passwd", wantErr: ErrBadPath},
		{in: "file:///etc/passwd", wantErr: ErrBadPath},
		{in: "s3://bucket/x.parquet", wantErr: ErrBadPath},
		{in: "_delta_log/00000000000000000001.json", wantErr: ErrBadPath},
		{in: "%5Fdelta_log/1.json", wantErr: ErrBadPath},
		{in: "a//b", wantErr: ErrBadPath},
		{in: "./a", wantErr: ErrBadPath},
		{in: "a/", wantErr: ErrBadPath},
		{in: "a\\..\\b", wantErr: ErrBadPath},
		{in: "a%00b", wantErr: ErrBadPath},
		{in: "a%zz", wantErr: ErrBadPath},
		{in: "a?b", wantErr: ErrBadPath},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := DataPath(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("DataPath(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("DataPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzDataPath(f *testing.F) {
	for _, s := range []string{"a/b.parquet", "../x", "%2e%2e/x", "_delta_log/x", "d=1/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		dec, err := DataPath(p)
		if err != nil {
			return
		}
		// Whatever passes must stay inside the table and out of its log.
		if dec == "" || dec[0] == '/' || dec == ".." || len(dec) >= 3 && dec[:3] == "../" {
			t.Fatalf("DataPath(%q) = %q escapes", p, dec)
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("DataPath(%q) = %q has segment %q", p, dec, seg)
			}
		}
		if first := strings.Split(dec, "/")[0]; first == LogDir {
			t.Fatalf("DataPath(%q) = %q is inside the log", p, dec)
		}
	})
}

func TestCheckNoSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "d=1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d=1", "f.parquet"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "d=1", "link.parquet")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "d=2")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel     string
		size    int64 // of the information returned, -1 for none
		wantErr error
	}{
		{"d=1/f.parquet", 1, nil},
		{"d=1", 0, nil},
		{"d=1/missing.parquet", -1, nil},
		{"d=3/missing.parquet", -1, nil},
		{"d=1/link.parquet", -1, ErrSymlink},
		{"d=2/passwd", -1, ErrSymlink},
	}
	for _, tc := range tests {
		t.Run(tc.rel, func(t *testing.T) {
			fi, err := CheckNoSymlinks(dir, tc.rel)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CheckNoSymlinks(%q) = %v, want %v", tc.rel, err, tc.wantErr)
			}
			switch {
			case tc.size < 0 && fi != nil:
				t.Fatalf("CheckNoSymlinks(%q) returned information of %s", tc.rel, fi.Name())
			case tc.size >= 0 && fi == nil:
				t.Fatalf("CheckNoSymlinks(%q) returned no information", tc.rel)
			case tc.size >= 0:
				want, err := os.Stat(filepath.Join(dir, filepath.FromSlash(tc.rel)))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Name() != want.Name() || fi.IsDir() != want.IsDir() || !fi.ModTime().Equal(want.ModTime()) || (!fi.IsDir() && fi.Size() != tc.size) {
					t.Fatalf("CheckNoSymlinks(%q) = %v, stat says %v", tc.rel, fi, want)
				}
			}
		})
	}
}
