package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// maxExactInt is the largest integer a JSON number (a float64) holds exactly.
const maxExactInt = 1 << 53

// rowStruct converts a row from the reader (see reader.RecordRows) to a
// protobuf Struct, keeping values exact: integers beyond ±2^53 and decimals
// with more digits than a double holds become decimal strings.
func rowStruct(row map[string]any) (*structpb.Struct, error) {
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(row))}
	for k, v := range row {
		pv, err := jsonValue(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", k, err)
		}
		out.Fields[k] = pv
	}
	return out, nil
}

func jsonValue(v any) (*structpb.Value, error) {
	switch v := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case bool:
		return structpb.NewBoolValue(v), nil
	case string:
		return structpb.NewStringValue(v), nil
	case []byte:
		return structpb.NewStringValue(base64.StdEncoding.EncodeToString(v)), nil
	case int:
		return intValue(int64(v)), nil
	case int8:
		return intValue(int64(v)), nil
	case int16:
		return intValue(int64(v)), nil
	case int32:
		return intValue(int64(v)), nil
	case int64:
		return intValue(v), nil
	case float32:
		return floatValue(float64(v)), nil
	case float64:
		return floatValue(v), nil
	case json.Number:
		s := v.String()
		if f, err := strconv.ParseFloat(s, 64); err == nil && strconv.FormatFloat(f, 'f', -1, 64) == trimDecimal(s) {
			return structpb.NewNumberValue(f), nil
		}
		return structpb.NewStringValue(s), nil
	case time.Time:
		return structpb.NewStringValue(v.UTC().Format(time.RFC3339Nano)), nil
	case map[string]any:
		st, err := rowStruct(v)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(st), nil
	case []any:
		lv := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(v))}
		for _, e := range v {
			pe, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			lv.Values = append(lv.Values, pe)
		}
		return structpb.NewListValue(lv), nil
	case []map[string]any:
		lv := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(v))}
		for _, e := range v {
			pe, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			lv.Values = append(lv.Values, pe)
		}
		return structpb.NewListValue(lv), nil
	}
	// Anything else: through encoding/json, which the reader's values support.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value of type %T: %w", v, err)
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("value of type %T: %w", v, err)
	}
	return jsonValue(generic)
}

func intValue(i int64) *structpb.Value {
	if i > maxExactInt || i < -maxExactInt {
		return structpb.NewStringValue(strconv.FormatInt(i, 10))
	}
	return structpb.NewNumberValue(float64(i))
}

func floatValue(f float64) *structpb.Value {
	switch {
	case math.IsNaN(f):
		return structpb.NewStringValue("NaN")
	case math.IsInf(f, 1):
		return structpb.NewStringValue("Infinity")
	case math.IsInf(f, -1):
		return structpb.NewStringValue("-Infinity")
	}
	return structpb.NewNumberValue(f)
}

// trimDecimal drops trailing fraction zeros ("12.50" → "12.5", "3.0" → "3").
func trimDecimal(s string) string {
	dot := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.':
			dot = i
		case 'e', 'E':
			return s
		}
	}
	if dot < 0 {
		return s
	}
	end := len(s)
	for end > dot+1 && s[end-1] == '0' {
		end--
	}
	if end == dot+1 {
		end = dot
	}
	return s[:end]
}
