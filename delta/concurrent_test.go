package delta

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
)

const writerEnv = "DELTA_TEST_WRITER" // "root|id|commits": run as a writer process

func TestMain(m *testing.M) {
	if spec := os.Getenv(writerEnv); spec != "" {
		os.Exit(runWriterProcess(spec))
	}
	code := m.Run()
	if bigRoot != "" {
		os.RemoveAll(bigRoot) // the benchmarks' 10,000-commit tables
	}
	os.Exit(code)
}

// runWriterProcess commits blind appends and prints "path version" for each
// acknowledged commit.
func runWriterProcess(spec string) int {
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	st, err := storage.NewLocal(parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	acks, err := appendMany(context.Background(), Open(st), "p"+parts[1], n)
	for _, a := range acks {
		fmt.Println(a)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// appendMany commits n blind appends, each with one file, reading the
// table once at the start so later commits race from a stale version.
func appendMany(ctx context.Context, tbl *Table, prefix string, n int) ([]string, error) {
	s, err := tbl.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rv := s.Version()
	var acks []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("day=2024-01-01/%s-%d.parquet", prefix, i)
		v, err := tbl.Commit(ctx, appendReq(rv, p))
		if err != nil {
			return acks, err
		}
		acks = append(acks, fmt.Sprintf("%s %d", p, v))
		if i%2 == 0 {
			rv = v // sometimes fresh, sometimes stale
		}
	}
	return acks, nil
}

func TestConcurrentBlindAppends(t *testing.T) {
	const goroutines, processes, perWriter = 4, 3, 25
	ctx := context.Background()
	_, st := newTestTable(t)
	var (
		mu   sync.Mutex
		acks []string
		wg   sync.WaitGroup
		errs = make(chan error, goroutines+processes)
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			a, err := appendMany(ctx, Open(st), fmt.Sprintf("g%d", g), perWriter)
			mu.Lock()
			acks = append(acks, a...)
			mu.Unlock()
			if err != nil {
				errs <- err
			}
		}(g)
	}
	for p := 0; p < processes; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%d", writerEnv, st.Root(), p, perWriter))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var a []string
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				a = append(a, sc.Text())
			}
			mu.Lock()
			acks = append(acks, a...)
			mu.Unlock()
			if err != nil {
				errs <- fmt.Errorf("writer process %d: %v: %s", p, err, stderr.String())
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := (goroutines + processes) * perWriter
	if len(acks) != total {
		t.Fatalf("%d acknowledged commits, want %d", len(acks), total)
	}
	l, err := listLog(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if l.maxCommit != int64(total) || len(l.commits) != total+1 {
		t.Fatalf("log has %d commits up to %d, want versions 0..%d", len(l.commits), l.maxCommit, total)
	}
	seen := map[int64]bool{}
	for _, a := range acks {
		var p string
		var v int64
		if _, err := fmt.Sscanf(a, "%s %d", &p, &v); err != nil {
			t.Fatalf("ack %q: %v", a, err)
		}
		if seen[v] {
			t.Errorf("version %d acknowledged twice", v)
		}
		seen[v] = true
		acts, err := readCommit(ctx, st, v)
		if err != nil {
			t.Fatal(err)
		}
		if len(acts) != 2 || acts[1].Add == nil || acts[1].Add.Path != p {
			t.Errorf("commit %d does not hold %s", v, p)
		}
	}
	s, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.NumFiles() != total {
		t.Errorf("snapshot has %d files, want %d", s.NumFiles(), total)
	}
}
