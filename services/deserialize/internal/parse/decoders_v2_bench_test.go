//go:build goexperiment.jsonv2

package parse

import (
	jsonv2 "encoding/json/v2"
	"testing"
)

// BenchmarkDecodersJSONv2 measures encoding/json/v2, which Go 1.26 builds
// only with GOEXPERIMENT=jsonv2. It refuses duplicate names and invalid
// UTF-8 by default, as Parser does.
func BenchmarkDecodersJSONv2(b *testing.B) {
	var r stdReading
	benchPayloads(b, func(data []byte) error {
		r = stdReading{}
		if err := jsonv2.Unmarshal(data, &r); err != nil {
			return err
		}
		_, err := r.TS.Float64()
		return err
	})
}
