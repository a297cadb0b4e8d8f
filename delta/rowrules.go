package delta

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Row rules are the parts of a table that hold every row to an expression:
// CHECK constraints (table properties delta.constraints.<name>, writer
// version 3 or the checkConstraints feature) and column invariants (a
// field's delta.invariants metadata, writer version 2 or the invariants
// feature). A writer must check the rows of every file it adds against them.
// This library never sees rows (a commit names files others wrote), so it
// refuses what would need the check: adding data to a table with a rule,
// and a new rule (the rows already in the table would need it). Rewrites
// (dataChange=false: compaction) commit as before, since they add no row
// that was not there.

// propConstraintPrefix starts the table property of a CHECK constraint.
const propConstraintPrefix = "delta.constraints."

// fieldInvariants is the field metadata key of a column invariant.
const fieldInvariants = "delta.invariants"

// rowRule is one row rule of a table.
type rowRule struct {
	feature string // the table feature: checkConstraints or invariants
	name    string // the constraint's name or the column's dotted path
	expr    string // the expression as the table states it
}

func (r rowRule) String() string {
	if r.feature == "checkConstraints" {
		return fmt.Sprintf("CHECK constraint %s (%s)", r.name, r.expr)
	}
	return fmt.Sprintf("invariant of column %s (%s)", r.name, r.expr)
}

// rowRules returns the row rules of a table with configuration conf and
// schema: the constraints in name order, then the invariants in schema order.
func rowRules(conf map[string]string, schema *StructType) []rowRule {
	var rules []rowRule
	for k, v := range conf {
		if len(k) > len(propConstraintPrefix) && strings.EqualFold(k[:len(propConstraintPrefix)], propConstraintPrefix) {
			rules = append(rules, rowRule{feature: "checkConstraints", name: k[len(propConstraintPrefix):], expr: v})
		}
	}
	slices.SortFunc(rules, func(a, b rowRule) int { return strings.Compare(a.name, b.name) })
	if schema != nil {
		rules = appendInvariants(rules, "", schema)
	}
	return rules
}

// appendInvariants appends the invariants of t's fields (nested ones
// included), naming each by its dotted path under prefix.
func appendInvariants(rules []rowRule, prefix string, t DataType) []rowRule {
	switch x := t.(type) {
	case *StructType:
		for _, f := range x.Fields {
			path := prefix + f.Name
			if v, ok := f.Metadata[fieldInvariants]; ok {
				rules = append(rules, rowRule{feature: "invariants", name: path, expr: invariantText(v)})
			}
			rules = appendInvariants(rules, path+".", f.Type)
		}
	case *ArrayType:
		rules = appendInvariants(rules, prefix, x.ElementType)
	case *MapType:
		rules = appendInvariants(rules, prefix, x.KeyType)
		rules = appendInvariants(rules, prefix, x.ValueType)
	}
	return rules
}

// invariantText returns an invariant's expression: Delta Lake stores
// {"expression": {"expression": "<sql>"}} as a JSON string.
func invariantText(v any) string {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	var inv struct {
		Expression struct {
			Expression string `json:"expression"`
		} `json:"expression"`
	}
	if json.Unmarshal([]byte(s), &inv) == nil && inv.Expression.Expression != "" {
		return inv.Expression.Expression
	}
	return s
}

// newRowRule returns the first rule of after that before lacks, if any.
func newRowRule(before, after []rowRule) (rowRule, bool) {
	for _, r := range after {
		if !slices.Contains(before, r) {
			return r, true
		}
	}
	return rowRule{}, false
}

// rowRuleError is the error of a commit that would need a row rule checked.
func rowRuleError(r rowRule, why string) error {
	return &UnsupportedFeatureError{Feature: r.feature, Detail: fmt.Sprintf("%s: %s; this library does not read rows to check them", r, why)}
}
