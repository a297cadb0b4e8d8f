package datafile

import (
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/s2"
)

// fastSnappy is arrow-go's Snappy codec with a faster encoder. arrow-go
// encodes with klauspost's snappy.Encode, which is s2's EncodeSnappyBetter:
// a few percent smaller pages for about twice the CPU of s2's EncodeSnappy,
// whose output is the same Snappy format that every reader decodes. Every
// file plantlake writes goes through it: the hops' batches and the
// catalog's compactions (see docs/decisions.md for the measurement).
type fastSnappy struct{ compress.Codec }

// Encode compresses src into dst (reused when large enough).
func (fastSnappy) Encode(dst, src []byte) []byte { return s2.EncodeSnappy(dst, src) }

// EncodeLevel is Encode; Snappy has no levels.
func (fastSnappy) EncodeLevel(dst, src []byte, _ int) []byte { return s2.EncodeSnappy(dst, src) }

// CompressBound is the largest output of Encode for n input bytes.
func (fastSnappy) CompressBound(n int64) int64 { return int64(s2.MaxEncodedLen(int(n))) }

func init() {
	orig, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		panic("datafile: arrow-go has no Snappy codec: " + err.Error())
	}
	compress.RegisterCodec(compress.Codecs.Snappy, fastSnappy{orig})
}
