package parse

// The decoder comparison behind docs/decisions.md, "Deserialize": each
// candidate decodes the seed-shaped payloads into the five typed fields.
// Run it on one core:
//
//	GOMAXPROCS=1 go test -run='^$' -bench=Decoders -benchmem ./internal/parse
//	GOEXPERIMENT=jsonv2 GOMAXPROCS=1 go test -run='^$' -bench=Decoders -benchmem ./internal/parse
//
// The library decoders do less than Parser: they neither keep unknown fields
// nor refuse duplicate keys (except encoding/json/v2, which refuses them by
// default), and they read ts through float64 or json.Number.

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	"github.com/valyala/fastjson"

	"github.com/plantlake/plantlake/services/deserialize/internal/cputime"
)

// payloads are seed-shaped readings of about 110 bytes, with varied sensors.
var payloads = func() [][]byte {
	units := []struct{ m, u string }{{"temperature", "C"}, {"pressure", "bar"}, {"humidity", "%"}, {"vibration", "mm/s"}}
	out := make([][]byte, 256)
	for i := range out {
		mu := units[i%len(units)]
		out[i] = fmt.Appendf(nil, `{"sensor_id":"press%03d-line%d","measurement":%q,"value":%d.%03d,"unit":%q,"ts":1625000%03d.%06d}`,
			i%64, i%7, mu.m, 20+i%80, i*37%1000, mu.u, i, i*7919%1000000)
	}
	return out
}()

// stdReading is the payload's shape for the struct-based decoders.
type stdReading struct {
	SensorID    string      `json:"sensor_id"`
	Measurement string      `json:"measurement"`
	Value       float64     `json:"value"`
	Unit        string      `json:"unit"`
	TS          json.Number `json:"ts"`
}

func benchPayloads(b *testing.B, decode func([]byte) error) {
	b.Helper()
	n := 0
	for _, p := range payloads {
		n += len(p)
	}
	b.SetBytes(int64(n / len(payloads)))
	b.ReportAllocs()
	done := cputime.Start(b)
	for i := 0; b.Loop(); i++ {
		if err := decode(payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
	done()
}

func BenchmarkDecoders(b *testing.B) {
	b.Run("parser", func(b *testing.B) {
		p := NewParser()
		var r Reading
		benchPayloads(b, func(data []byte) error {
			if err := p.Parse(data, &r); err != nil {
				return err
			}
			return nil
		})
	})
	b.Run("encoding-json", func(b *testing.B) {
		var r stdReading
		benchPayloads(b, func(data []byte) error {
			r = stdReading{}
			if err := json.Unmarshal(data, &r); err != nil {
				return err
			}
			_, err := r.TS.Float64()
			return err
		})
	})
	b.Run("goccy-go-json", func(b *testing.B) {
		var r stdReading
		benchPayloads(b, func(data []byte) error {
			r = stdReading{}
			if err := gojson.Unmarshal(data, &r); err != nil {
				return err
			}
			_, err := r.TS.Float64()
			return err
		})
	})
	b.Run("sonic", func(b *testing.B) {
		var r stdReading
		api := sonic.ConfigStd
		benchPayloads(b, func(data []byte) error {
			r = stdReading{}
			if err := api.Unmarshal(data, &r); err != nil {
				return err
			}
			_, err := r.TS.Float64()
			return err
		})
	})
	b.Run("fastjson", func(b *testing.B) {
		var p fastjson.Parser
		benchPayloads(b, func(data []byte) error {
			v, err := p.ParseBytes(data)
			if err != nil {
				return err
			}
			o, err := v.Object()
			if err != nil {
				return err
			}
			var r Reading
			var ferr error
			o.Visit(func(k []byte, v *fastjson.Value) {
				switch string(k) {
				case "sensor_id":
					s, err := v.StringBytes()
					r.SensorID, ferr = string(s), err
				case "measurement":
					s, err := v.StringBytes()
					r.Measurement, ferr = string(s), err
				case "unit":
					s, err := v.StringBytes()
					r.Unit, ferr = string(s), err
				case "value":
					r.Value, ferr = v.Float64()
				case "ts":
					var ts float64
					ts, ferr = v.Float64()
					r.TS = int64(ts * 1e6)
				}
			})
			return ferr
		})
	})
}
