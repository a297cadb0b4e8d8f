package rules

import (
	"testing"

	"github.com/plantlake/plantlake/services/deserialize/internal/cputime"
)

// BenchmarkValidate measures the validate stage per reading:
//
//	GOMAXPROCS=1 go test -run='^$' -bench=Validate -benchmem ./internal/rules
func BenchmarkValidate(b *testing.B) {
	def, err := Load(defaultFile)
	if err != nil {
		b.Fatal(err)
	}
	one, err := Parse([]byte("custom:\n  - {name: range, action: drop, expr: 'measurement != \"temperature\" || (value > -40.0 && value < 400.0)'}\n"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		set  *Set
	}{
		{"builtins", Default()},
		{"builtins+1cel", one},
		{"default-file", def},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := bc.set.NewEvaluator()
			in := input(good())
			b.ReportAllocs()
			done := cputime.Start(b)
			for b.Loop() {
				if v := e.Validate(in); v.Action != "" {
					b.Fatal(v)
				}
			}
			done()
			e.Flush()
		})
	}
}
