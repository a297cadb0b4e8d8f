package catalog

import (
	"fmt"
	"testing"

	"github.com/plantlake/plantlake/delta"
)

func TestPlanCompaction(t *testing.T) {
	file := func(day string, i int, size int64) delta.Add {
		return delta.Add{Path: fmt.Sprintf("day=%s/f%02d", day, i), Size: size, PartitionValues: map[string]string{"day": day}}
	}
	var files []delta.Add
	for i := range 5 {
		files = append(files, file("a", i, 10)) // 5 small files in a
	}
	files = append(files, file("b", 0, 10), file("b", 1, 100)) // one small, one big in b
	for i := range 3 {
		files = append(files, file("c", i, 30)) // 3 small files in c
	}
	all := func(map[string]string) bool { return true }
	onlyC := func(pv map[string]string) bool { return pv["day"] == "c" }
	shape := func(bins [][]delta.Add) string {
		var s string
		for _, b := range bins {
			s += fmt.Sprintf("[%s×%d]", b[0].PartitionValues["day"], len(b))
		}
		return s
	}
	tests := []struct {
		name     string
		target   int64
		maxFiles int
		maxBytes int64
		minFiles int
		match    func(map[string]string) bool
		want     string
	}{
		{"everything small, most files first", 100, 100, 1 << 20, 2, all, "[a×5][c×3]"},
		{"bins split at the target; c files are not small", 40, 100, 1 << 20, 2, all, "[a×4]"},
		{"file budget", 100, 6, 1 << 20, 2, all, "[a×5]"},
		{"byte budget", 100, 100, 75, 2, all, "[a×5]"},
		{"policy minimum", 100, 100, 1 << 20, 4, all, "[a×5]"},
		{"partition filter", 100, 100, 1 << 20, 2, onlyC, "[c×3]"},
		{"nothing to do", 100, 100, 1 << 20, 6, all, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := shape(planCompaction(files, []string{"day"}, tc.target, tc.maxFiles, tc.maxBytes, tc.minFiles, tc.match))
			if got != tc.want {
				t.Fatalf("bins %s, want %s", got, tc.want)
			}
		})
	}
}
