package delta

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadColumnName is wrapped by CheckColumnNames and
// CheckPartitionColumnName errors.
var ErrBadColumnName = errors.New("delta: bad column name")

// invalidColumnChars are the characters Delta refuses in column names of a
// table without column mapping (Spark's rule, because Parquet column paths
// cannot hold them).
const invalidColumnChars = " ,;{}()\n\t="

// CheckColumnName checks one column or nested field name: not empty, none
// of ` ,;{}()\n\t=` and no other control character.
func CheckColumnName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadColumnName)
	}
	if i := strings.IndexAny(name, invalidColumnChars); i >= 0 {
		return fmt.Errorf("%w: %q has %q; without column mapping names cannot hold any of %q", ErrBadColumnName, name, name[i], invalidColumnChars)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q has a control character", ErrBadColumnName, name)
		}
	}
	return nil
}

// CheckPartitionColumnName checks the name of a partition column, which
// also names directories (<column>=<value>/): besides CheckColumnName, no
// '/' or '\' and no leading '.'.
func CheckPartitionColumnName(name string) error {
	if err := CheckColumnName(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w: partition column %q names a directory: no '/', '\\' or leading '.'", ErrBadColumnName, name)
	}
	return nil
}

// CheckColumnNames checks every column name of a schema, nested fields
// included, with CheckColumnName; the error names the field's path
// ("a.b.c").
func CheckColumnNames(s *StructType) error {
	return checkNames(s, "")
}

func checkNames(t DataType, prefix string) error {
	switch t := t.(type) {
	case *StructType:
		for _, f := range t.Fields {
			if err := CheckColumnName(f.Name); err != nil {
				if prefix != "" {
					return fmt.Errorf("field of %s: %w", prefix, err)
				}
				return err
			}
			p := f.Name
			if prefix != "" {
				p = prefix + "." + f.Name
			}
			if err := checkNames(f.Type, p); err != nil {
				return err
			}
		}
	case *ArrayType:
		return checkNames(t.ElementType, prefix+".element")
	case *MapType:
		if err := checkNames(t.KeyType, prefix+".key"); err != nil {
			return err
		}
		return checkNames(t.ValueType, prefix+".value")
	}
	return nil
}
