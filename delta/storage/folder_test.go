package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFolderPutIfAbsent checks a Folder's puts, with and without a spare
// file, and with a spare someone wrote to or replaced by a link: the
// contents land under their names, a taken name is ErrExists and keeps its
// contents, and no temporary file is left after Close.
func TestFolderPutIfAbsent(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.Folder("_delta_log")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "0.json", []byte("zero")); err != nil {
		t.Fatal(err)
	}
	if err := f.Spare(); err != nil {
		t.Fatal(err)
	}
	if err := f.Spare(); err != nil { // one spare at a time
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(l.Root(), "_delta_log"))
	if len(entries) != 2 || f.spare == "" {
		t.Fatalf("after Spare the folder holds %d entries, want 0.json and one temporary file", len(entries))
	}
	if err := f.PutIfAbsent(ctx, "1.json", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := f.Spare(); err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "1.json", []byte("other")); !errors.Is(err, ErrExists) {
		t.Fatalf("second put of 1.json = %v, want ErrExists", err)
	}
	// A spare file that is no longer the empty file Spare made is not used.
	if err := f.Spare(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.spare, []byte("planted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "2.json", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := f.Spare(); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(l.Root(), "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.spare); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, f.spare); err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "3.json", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(target); err != nil || len(b) != 0 {
		t.Fatalf("the put wrote through a link to %q: %v", b, err)
	}
	if err := f.PutIfAbsent(ctx, "../x.json", []byte("x")); err == nil {
		t.Fatal("put of ../x.json accepted")
	}
	for name, want := range map[string]string{"_delta_log/0.json": "zero", "_delta_log/1.json": "one", "_delta_log/2.json": "two", "_delta_log/3.json": "three"} {
		got, err := l.ReadFile(ctx, name)
		if err != nil || string(got) != want {
			t.Fatalf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := f.Spare(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.PutIfAbsent(ctx, "4.json", []byte("four")); err == nil {
		t.Fatal("put after Close accepted")
	}
	entries, err = os.ReadDir(filepath.Join(l.Root(), "_delta_log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if isTempName(e.Name()) {
			t.Fatalf("temporary file %s left after Close", e.Name())
		}
	}
	if len(entries) != 4 {
		t.Fatalf("the folder holds %d entries, want 4", len(entries))
	}
}
