package datafile

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
)

// arrow-go's Snappy codec compresses with s2.EncodeSnappyBetter, which spends about twice the
// CPU of the plain Snappy encoder for a few percent smaller pages. Data files are written on
// the ingest path, where that CPU is the budget, and are compacted later anyway; so the
// process's Snappy codec is replaced by one that encodes with s2.EncodeSnappy. Its output is
// standard Snappy (any reader decodes it); decoding is arrow-go's own.
func init() {
	base, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		return // arrow-go without Snappy: nothing to speed up
	}
	compress.RegisterCodec(compress.Codecs.Snappy, fastSnappy{base})
}

// fastSnappy is arrow-go's Snappy codec with the fast block encoder.
type fastSnappy struct{ compress.Codec }

// Encode compresses src as one Snappy block, into dst if it is large enough.
func (fastSnappy) Encode(dst, src []byte) []byte { return s2.EncodeSnappy(dst, src) }

// EncodeLevel is Encode: Snappy has no levels.
func (fastSnappy) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }
