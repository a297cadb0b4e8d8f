package storage

import (
	"context"
	"errors"
	"fmt"
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
