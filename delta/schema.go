package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// ErrInvalidSchema is wrapped by errors about a schema string that is not a
// valid Delta schema.
var ErrInvalidSchema = errors.New("delta: invalid schema")

// DataType is a Delta column type: a PrimitiveType, *StructType, *ArrayType
// or *MapType.
type DataType interface {
	// TypeName returns the type's name as in the schema: "long",
	// "decimal(10,2)", "struct", "array" or "map".
	TypeName() string
	isDataType()
}

// PrimitiveType is a primitive Delta type by its schema name: "string",
// "long", "integer", "short", "byte", "float", "double", "boolean", "binary",
// "date", "timestamp", "timestamp_ntz", "decimal(p,s)", "variant", "void".
type PrimitiveType string

// The primitive types.
const (
	String       PrimitiveType = "string"
	Long         PrimitiveType = "long"
	Integer      PrimitiveType = "integer"
	Short        PrimitiveType = "short"
	Byte         PrimitiveType = "byte"
	Float        PrimitiveType = "float"
	Double       PrimitiveType = "double"
	Boolean      PrimitiveType = "boolean"
	Binary       PrimitiveType = "binary"
	Date         PrimitiveType = "date"
	Timestamp    PrimitiveType = "timestamp"
	TimestampNTZ PrimitiveType = "timestamp_ntz"
)

// TypeName implements DataType.
func (p PrimitiveType) TypeName() string { return string(p) }
func (PrimitiveType) isDataType()        {}

var decimalRE = regexp.MustCompile(`^decimal\(\s*(\d+)\s*,\s*(-?\d+)\s*\)$`)

// DecimalType returns the primitive type decimal(precision,scale).
func DecimalType(precision, scale int) PrimitiveType {
	return PrimitiveType(fmt.Sprintf("decimal(%d,%d)", precision, scale))
}

// Decimal returns the precision and scale of a decimal type; ok is false for
// other types. Plain "decimal" is decimal(10,0), as in Spark.
func (p PrimitiveType) Decimal() (precision, scale int, ok bool) {
	if p == "decimal" {
		return 10, 0, true
	}
	m := decimalRE.FindStringSubmatch(string(p))
	if m == nil {
		return 0, 0, false
	}
	precision, _ = strconv.Atoi(m[1])
	scale, _ = strconv.Atoi(m[2])
	return precision, scale, true
}

var primitiveNames = map[PrimitiveType]bool{
	String: true, Long: true, Integer: true, Short: true, Byte: true, Float: true, Double: true,
	Boolean: true, Binary: true, Date: true, Timestamp: true, TimestampNTZ: true,
	"variant": true, "void": true, "decimal": true,
}

// StructType is a struct: a table's schema or a nested struct column.
type StructType struct {
	Fields []StructField
}

// TypeName implements DataType.
func (*StructType) TypeName() string { return "struct" }
func (*StructType) isDataType()      {}

// Field returns the field named name, or nil.
func (s *StructType) Field(name string) *StructField {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// StructField is a column or a nested field.
type StructField struct {
	Name     string
	Type     DataType
	Nullable bool
	// Metadata is the field's metadata; numbers are json.Number.
	Metadata map[string]any
}

// ArrayType is an array column type.
type ArrayType struct {
	ElementType  DataType
	ContainsNull bool
}

// TypeName implements DataType.
func (*ArrayType) TypeName() string { return "array" }
func (*ArrayType) isDataType()      {}

// MapType is a map column type.
type MapType struct {
	KeyType           DataType
	ValueType         DataType
	ValueContainsNull bool
}

// TypeName implements DataType.
func (*MapType) TypeName() string { return "map" }
func (*MapType) isDataType()      {}

// ParseSchema parses a schema string of a metaData action.
func ParseSchema(schemaString string) (*StructType, error) {
	if schemaString == "" {
		return nil, fmt.Errorf("%w: empty schema string", ErrInvalidSchema)
	}
	t, err := parseType(json.RawMessage(schemaString), 0)
	if err != nil {
		return nil, err
	}
	st, ok := t.(*StructType)
	if !ok {
		return nil, fmt.Errorf("%w: top-level type is %s, not struct", ErrInvalidSchema, t.TypeName())
	}
	return st, nil
}

const maxSchemaDepth = 100

type wireType struct {
	Type              string            `json:"type"`
	Fields            []json.RawMessage `json:"fields"`
	ElementType       json.RawMessage   `json:"elementType"`
	ContainsNull      *bool             `json:"containsNull"`
	KeyType           json.RawMessage   `json:"keyType"`
	ValueType         json.RawMessage   `json:"valueType"`
	ValueContainsNull *bool             `json:"valueContainsNull"`
}

type wireField struct {
	Name     *string         `json:"name"`
	Type     json.RawMessage `json:"type"`
	Nullable *bool           `json:"nullable"`
	Metadata json.RawMessage `json:"metadata"`
}

func parseType(raw json.RawMessage, depth int) (DataType, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrInvalidSchema, maxSchemaDepth)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: missing type", ErrInvalidSchema)
	}
	if raw[0] == '"' {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
		}
		p := PrimitiveType(name)
		if _, _, ok := p.Decimal(); ok || primitiveNames[p] {
			return p, nil
		}
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidSchema, name)
	}
	var w wireType
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	switch w.Type {
	case "struct":
		st := &StructType{Fields: make([]StructField, 0, len(w.Fields))}
		for i, fr := range w.Fields {
			var wf wireField
			if err := json.Unmarshal(fr, &wf); err != nil {
				return nil, fmt.Errorf("%w: field %d: %v", ErrInvalidSchema, i, err)
			}
			if wf.Name == nil {
				return nil, fmt.Errorf("%w: field %d has no name", ErrInvalidSchema, i)
			}
			ft, err := parseType(wf.Type, depth+1)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", *wf.Name, err)
			}
			f := StructField{Name: *wf.Name, Type: ft, Nullable: wf.Nullable == nil || *wf.Nullable}
			if !isJSONNull(wf.Metadata) {
				dec := json.NewDecoder(bytes.NewReader(wf.Metadata))
				dec.UseNumber()
				if err := dec.Decode(&f.Metadata); err != nil {
					return nil, fmt.Errorf("%w: field %q metadata: %v", ErrInvalidSchema, *wf.Name, err)
				}
			}
			st.Fields = append(st.Fields, f)
		}
		return st, nil
	case "array":
		et, err := parseType(w.ElementType, depth+1)
		if err != nil {
			return nil, fmt.Errorf("array element: %w", err)
		}
		return &ArrayType{ElementType: et, ContainsNull: w.ContainsNull == nil || *w.ContainsNull}, nil
	case "map":
		kt, err := parseType(w.KeyType, depth+1)
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		vt, err := parseType(w.ValueType, depth+1)
		if err != nil {
			return nil, fmt.Errorf("map value: %w", err)
		}
		return &MapType{KeyType: kt, ValueType: vt, ValueContainsNull: w.ValueContainsNull == nil || *w.ValueContainsNull}, nil
	case "variant":
		return PrimitiveType("variant"), nil
	default:
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidSchema, w.Type)
	}
}

// MarshalJSON writes the struct in Delta's schema format.
func (s *StructType) MarshalJSON() ([]byte, error) {
	type wf struct {
		Name     string         `json:"name"`
		Type     DataType       `json:"type"`
		Nullable bool           `json:"nullable"`
		Metadata map[string]any `json:"metadata"`
	}
	fields := make([]wf, len(s.Fields))
	for i, f := range s.Fields {
		if f.Type == nil {
			return nil, fmt.Errorf("%w: field %q has no type", ErrInvalidSchema, f.Name)
		}
		md := f.Metadata
		if md == nil {
			md = map[string]any{}
		}
		fields[i] = wf{Name: f.Name, Type: f.Type, Nullable: f.Nullable, Metadata: md}
	}
	return json.Marshal(struct {
		Type   string `json:"type"`
		Fields []wf   `json:"fields"`
	}{"struct", fields})
}

// MarshalJSON writes the array type in Delta's schema format.
func (a *ArrayType) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type         string   `json:"type"`
		ElementType  DataType `json:"elementType"`
		ContainsNull bool     `json:"containsNull"`
	}{"array", a.ElementType, a.ContainsNull})
}

// MarshalJSON writes the map type in Delta's schema format.
func (m *MapType) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type              string   `json:"type"`
		KeyType           DataType `json:"keyType"`
		ValueType         DataType `json:"valueType"`
		ValueContainsNull bool     `json:"valueContainsNull"`
	}{"map", m.KeyType, m.ValueType, m.ValueContainsNull})
}

// SchemaString returns the schema as the string stored in metaData.schemaString.
func (s *StructType) SchemaString() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// UsesType reports whether any column, at any depth, has the primitive type t.
func (s *StructType) UsesType(t PrimitiveType) bool { return typeUses(s, t) }

func typeUses(dt DataType, t PrimitiveType) bool {
	switch x := dt.(type) {
	case PrimitiveType:
		return x == t
	case *StructType:
		for _, f := range x.Fields {
			if typeUses(f.Type, t) {
				return true
			}
		}
	case *ArrayType:
		return typeUses(x.ElementType, t)
	case *MapType:
		return typeUses(x.KeyType, t) || typeUses(x.ValueType, t)
	}
	return false
}
