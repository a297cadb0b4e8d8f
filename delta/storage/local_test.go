package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestPutIfAbsentOneWinner(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = l.PutIfAbsent(ctx, "_delta_log/00000000000000000001.json", []byte(fmt.Sprint(i)))
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	b, err := l.ReadFile(ctx, "_delta_log/00000000000000000001.json")
	if err != nil || string(b) != fmt.Sprint(winner) {
		t.Fatalf("content %q, %v; winner %d", b, err, winner)
	}
	infos, err := l.List(ctx, "_delta_log")
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v; temporary files left behind?", infos, err)
	}
}

func TestPaths(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "a//b", "./a"} {
		if err := l.WriteFile(ctx, p, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("WriteFile(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
	if _, err := l.ReadFile(ctx, "missing"); !errors.Is(err, ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v", err)
	}
	sub, err := Sub(l, "warehouse/raw/t")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.WriteFile(ctx, "a/b.parquet", []byte("x")); err != nil {
		t.Fatal(err)
	}
	fi, err := l.Stat(ctx, "warehouse/raw/t/a/b.parquet")
	if err != nil || fi.Size != 1 {
		t.Fatalf("Stat through parent = %+v, %v", fi, err)
	}
	infos, err := sub.List(ctx, "a")
	if err != nil || len(infos) != 1 || infos[0].Path != "a/b.parquet" {
		t.Fatalf("sub List = %+v, %v", infos, err)
	}
	if r, ok := sub.(Rooted); !ok || r.Root() != l.Root()+"/warehouse/raw/t" {
		t.Errorf("sub root = %v", sub)
	}
	if _, err := Sub(l, "../escape"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Sub(../escape) = %v", err)
	}
}

// TestListNames checks both name listings of Local and of a Sub store: the
// same names, temporary files left out, sorted by ListNames only.
func TestListNames(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"t/_delta_log/00000000000000000002.json", "t/_delta_log/00000000000000000000.json",
		"t/_delta_log/.00000000000000000003.json.tmp", "t/_delta_log/00000000000000000001.checkpoint.parquet",
		"t/_delta_log/_sidecars/x.parquet", "t/_delta_log/00000000000000000001.json"}
	for _, f := range files {
		if err := l.WriteFile(ctx, f, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"00000000000000000000.json", "00000000000000000001.checkpoint.parquet",
		"00000000000000000001.json", "00000000000000000002.json", "_sidecars"}
	sub, err := Sub(l, "t")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		store Store
		dir   string
	}{
		{"local", l, "t/_delta_log"},
		{"sub", sub, "_delta_log"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names, err := tc.store.(NameLister).ListNames(ctx, tc.dir)
			if err != nil || !slices.Equal(names, want) {
				t.Errorf("ListNames = %q, %v; want %q", names, err, want)
			}
			un, err := tc.store.(UnorderedNameLister).ListNamesUnordered(ctx, tc.dir)
			slices.Sort(un)
			if err != nil || !slices.Equal(un, want) {
				t.Errorf("ListNamesUnordered = %q, %v; want %q in any order", un, err, want)
			}
			if _, err := tc.store.(UnorderedNameLister).ListNamesUnordered(ctx, "missing"); !errors.Is(err, ErrNotExist) {
				t.Errorf("ListNamesUnordered of a missing folder: %v, want ErrNotExist", err)
			}
		})
	}
}
