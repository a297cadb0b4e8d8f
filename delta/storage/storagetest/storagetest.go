// Package storagetest is the conformance suite of the storage.Store
// contract: every store (local, S3, Azure) runs the same tests, so that the
// Delta library can rely on the contract and not on one implementation.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
)

// Options tune the suite to a store.
type Options struct {
	// LargeFile is the size of the file the large-write test writes; it
	// should exceed the store's multipart threshold. 0 means 1 MiB.
	LargeFile int
	// Writers is how many goroutines race PutIfAbsent on one path;
	// default 8.
	Writers int
}

// Run runs the conformance suite. newStore must return an empty store
// (e.g. a fresh prefix) on every call.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store, opts Options) {
	if opts.LargeFile <= 0 {
		opts.LargeFile = 1 << 20
	}
	if opts.Writers <= 0 {
		opts.Writers = 8
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store, opts Options)
	}{
		{"WriteRead", testWriteRead},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentOneWinner", testPutIfAbsentOneWinner},
		{"List", testList},
		{"Stat", testStat},
		{"OpenReadAt", testOpenReadAt},
		{"Delete", testDelete},
		{"InvalidPaths", testInvalidPaths},
		{"Sub", testSub},
		{"LargeFile", testLargeFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t), opts) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testWriteRead(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	if _, err := s.ReadFile(ctx, "a/missing.json"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want ErrNotExist", err)
	}
	must(t, s.WriteFile(ctx, "a/b/c.json", []byte("one")))
	must(t, s.WriteFile(ctx, "a/b/c.json", []byte("two, longer")))
	b, err := s.ReadFile(ctx, "a/b/c.json")
	if err != nil || string(b) != "two, longer" {
		t.Errorf("ReadFile after overwrite = %q, %v", b, err)
	}
	must(t, s.WriteFile(ctx, "empty", nil))
	if b, err := s.ReadFile(ctx, "empty"); err != nil || len(b) != 0 {
		t.Errorf("ReadFile(empty) = %q, %v", b, err)
	}
}

func testPutIfAbsent(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	p := "_delta_log/00000000000000000000.json"
	must(t, s.PutIfAbsent(ctx, p, []byte("first")))
	if err := s.PutIfAbsent(ctx, p, []byte("second")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	b, err := s.ReadFile(ctx, p)
	if err != nil || string(b) != "first" {
		t.Errorf("content after the refused put = %q, %v; want %q", b, err, "first")
	}
	// A file written with WriteFile is taken too.
	must(t, s.WriteFile(ctx, "_delta_log/_last_checkpoint", []byte("{}")))
	if err := s.PutIfAbsent(ctx, "_delta_log/_last_checkpoint", []byte("x")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("PutIfAbsent over WriteFile = %v, want ErrExists", err)
	}
}

func testPutIfAbsentOneWinner(t *testing.T, s storage.Store, opts Options) {
	ctx := context.Background()
	p := "_delta_log/00000000000000000001.json"
	var wg sync.WaitGroup
	results := make([]error, opts.Writers)
	for i := range opts.Writers {
		wg.Go(func() { results[i] = s.PutIfAbsent(ctx, p, []byte(fmt.Sprint("writer ", i))) })
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	b, err := s.ReadFile(ctx, p)
	if err != nil || string(b) != fmt.Sprint("writer ", winner) {
		t.Fatalf("content %q, %v; winner %d", b, err, winner)
	}
	infos, err := s.List(ctx, "_delta_log")
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v; want the one file", infos, err)
	}
}

func testList(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	for _, f := range []string{"t/_delta_log/00000000000000000001.json", "t/_delta_log/00000000000000000000.json",
		"t/part-b.parquet", "t/day=2024-01-01/part-a.parquet", "t/day=2024-01-02/x/deep.parquet", "other/f"} {
		must(t, s.WriteFile(ctx, f, []byte(f)))
	}
	infos, err := s.List(ctx, "t")
	must(t, err)
	var got []string
	for _, fi := range infos {
		got = append(got, fmt.Sprintf("%s dir=%v size=%d", fi.Path, fi.IsDir, fi.Size))
	}
	want := []string{
		"t/_delta_log dir=true size=0",
		"t/day=2024-01-01 dir=true size=0",
		"t/day=2024-01-02 dir=true size=0",
		fmt.Sprintf("t/part-b.parquet dir=false size=%d", len("t/part-b.parquet")),
	}
	if !slices.Equal(got, want) {
		t.Errorf("List(t) =\n%q\nwant\n%q", got, want)
	}
	for _, fi := range infos {
		if !fi.IsDir && fi.ModTime.IsZero() {
			t.Errorf("%s has no modification time", fi.Path)
		}
	}
	root, err := s.List(ctx, "")
	must(t, err)
	var names []string
	for _, fi := range root {
		names = append(names, fi.Name())
	}
	if !slices.Equal(names, []string{"other", "t"}) {
		t.Errorf("List(root) names = %q", names)
	}
	if _, err := s.List(ctx, "nope"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("List(missing) = %v, want ErrNotExist", err)
	}
	if nl, ok := s.(storage.NameLister); ok {
		names, err := nl.ListNames(ctx, "t/_delta_log")
		if err != nil || !slices.Equal(names, []string{"00000000000000000000.json", "00000000000000000001.json"}) {
			t.Errorf("ListNames = %q, %v", names, err)
		}
	}
}

func testStat(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	must(t, s.WriteFile(ctx, "d/f.bin", []byte("12345")))
	fi, err := s.Stat(ctx, "d/f.bin")
	if err != nil || fi.IsDir || fi.Size != 5 || fi.Path != "d/f.bin" || fi.ModTime.IsZero() {
		t.Errorf("Stat(file) = %+v, %v", fi, err)
	}
	fi, err = s.Stat(ctx, "d")
	if err != nil || !fi.IsDir {
		t.Errorf("Stat(dir) = %+v, %v", fi, err)
	}
	if _, err := s.Stat(ctx, "d/missing"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want ErrNotExist", err)
	}
}

func testOpenReadAt(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	must(t, s.WriteFile(ctx, "f.parquet", data))
	f, err := s.Open(ctx, "f.parquet")
	must(t, err)
	defer f.Close()
	if f.Size() != int64(len(data)) {
		t.Errorf("Size = %d, want %d", f.Size(), len(data))
	}
	cases := []struct {
		off, n  int
		wantN   int
		wantEOF bool
	}{
		{0, 4, 4, false},
		{99_992, 8, 8, false},
		{50_000, 1000, 1000, false},
		{99_996, 8, 4, true},
		{100_000, 8, 0, true},
	}
	for _, c := range cases {
		buf := make([]byte, c.n)
		n, err := f.ReadAt(buf, int64(c.off))
		if n != c.wantN || (err == io.EOF) != c.wantEOF || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF %v", c.n, c.off, n, err, c.wantN, c.wantEOF)
			continue
		}
		if !bytes.Equal(buf[:n], data[c.off:c.off+n]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", c.n, c.off)
		}
	}
	if _, err := s.Open(ctx, "missing.parquet"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}

func testDelete(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	must(t, s.WriteFile(ctx, "x/old.parquet", []byte("x")))
	must(t, s.WriteFile(ctx, "x/keep.parquet", []byte("x")))
	must(t, s.Delete(ctx, "x/old.parquet"))
	if _, err := s.Stat(ctx, "x/old.parquet"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat after Delete = %v, want ErrNotExist", err)
	}
	if err := s.Delete(ctx, "x/old.parquet"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Delete(missing) = %v, want ErrNotExist", err)
	}
	infos, err := s.List(ctx, "x")
	if err != nil || len(infos) != 1 || infos[0].Path != "x/keep.parquet" {
		t.Errorf("List after Delete = %+v, %v", infos, err)
	}
	// A deleted commit file can be put again (log cleanup, then a rewrite
	// is never done by Delta, but the store must not remember the name).
	must(t, s.PutIfAbsent(ctx, "x/c.json", []byte("1")))
	must(t, s.Delete(ctx, "x/c.json"))
	must(t, s.PutIfAbsent(ctx, "x/c.json", []byte("2")))
}

func testInvalidPaths(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "a//b", "./a", `a\b`} {
		if err := s.WriteFile(ctx, p, nil); !errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("WriteFile(%q) = %v, want ErrInvalidPath", p, err)
		}
		if err := s.PutIfAbsent(ctx, p, nil); !errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("PutIfAbsent(%q) = %v, want ErrInvalidPath", p, err)
		}
		if _, err := s.ReadFile(ctx, p); !errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("ReadFile(%q) = %v, want ErrInvalidPath", p, err)
		}
		if _, err := s.List(ctx, p); !errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("List(%q) = %v, want ErrInvalidPath", p, err)
		}
		if err := s.Delete(ctx, p); !errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
	if err := s.Delete(ctx, ""); !errors.Is(err, storage.ErrInvalidPath) {
		t.Errorf("Delete(root) = %v, want ErrInvalidPath", err)
	}
}

func testSub(t *testing.T, s storage.Store, _ Options) {
	ctx := context.Background()
	sub, err := storage.Sub(s, "raw/readings")
	must(t, err)
	must(t, sub.WriteFile(ctx, "a/b.parquet", []byte("x")))
	must(t, sub.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}")))
	fi, err := s.Stat(ctx, "raw/readings/a/b.parquet")
	if err != nil || fi.Size != 1 {
		t.Fatalf("Stat through parent = %+v, %v", fi, err)
	}
	infos, err := sub.List(ctx, "")
	if err != nil || len(infos) != 2 || infos[0].Path != "_delta_log" || infos[1].Path != "a" {
		t.Fatalf("sub List = %+v, %v", infos, err)
	}
	if err := sub.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", nil); !errors.Is(err, storage.ErrExists) {
		t.Errorf("sub PutIfAbsent of a taken path = %v, want ErrExists", err)
	}
}

func testLargeFile(t *testing.T, s storage.Store, opts Options) {
	ctx := context.Background()
	data := make([]byte, opts.LargeFile)
	for i := range data {
		data[i] = byte(i ^ i>>8 ^ i>>16)
	}
	must(t, s.WriteFile(ctx, "big/part-0.parquet", data))
	got, err := s.ReadFile(ctx, "big/part-0.parquet")
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("large file read back differs (%d bytes, want %d)", len(got), len(data))
	}
	f, err := s.Open(ctx, "big/part-0.parquet")
	must(t, err)
	defer f.Close()
	tailBuf := make([]byte, 8)
	if _, err := f.ReadAt(tailBuf, int64(len(data)-8)); err != nil || !bytes.Equal(tailBuf, data[len(data)-8:]) {
		t.Errorf("footer read = %v, %v", tailBuf, err)
	}
}
