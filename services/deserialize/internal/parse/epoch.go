package parse

// The range of a Delta timestamp: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999Z, in Unix microseconds.
const (
	MinMicros = -62_135_596_800_000_000
	MaxMicros = 253_402_300_799_999_999
)

// maxExponent bounds the exponent considered: beyond it every non-zero
// mantissa is out of range or rounds to nothing.
const maxExponent = 1000

// epochMicros converts num, a valid JSON number of Unix seconds, to Unix
// microseconds from its decimal text, without floating point: digits past
// the sixth decimal are cut towards negative infinity. ok is false outside
// MinMicros..MaxMicros.
func epochMicros(num []byte) (micros int64, ok bool) {
	i := 0
	neg := false
	if num[0] == '-' {
		neg = true
		i++
	}
	intStart := i
	for i < len(num) && num[i] >= '0' && num[i] <= '9' {
		i++
	}
	intDigits := num[intStart:i]
	var fracDigits []byte
	if i < len(num) && num[i] == '.' {
		i++
		start := i
		for i < len(num) && num[i] >= '0' && num[i] <= '9' {
			i++
		}
		fracDigits = num[start:i]
	}
	exp := 0
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		i++
		expNeg := false
		if num[i] == '+' || num[i] == '-' {
			expNeg = num[i] == '-'
			i++
		}
		for ; i < len(num); i++ {
			if exp < maxExponent*10 {
				exp = exp*10 + int(num[i]-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}

	// The value is digits × 10^(scale) microseconds, digits being the integer
	// and fraction digits together.
	scale := exp - len(fracDigits) + 6
	var u uint64
	truncated := false
	nonZero := false
	// keep is how many leading digits count when scale is negative.
	total := len(intDigits) + len(fracDigits)
	keep := total
	if scale < 0 {
		keep = total + scale
	}
	const maxU = uint64(1) << 63
	for k := range total {
		var c byte
		if k < len(intDigits) {
			c = intDigits[k]
		} else {
			c = fracDigits[k-len(intDigits)]
		}
		d := uint64(c - '0')
		if d != 0 {
			nonZero = true
		}
		if k >= keep {
			if d != 0 {
				truncated = true
			}
			continue
		}
		if u > (maxU-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if !nonZero {
		return 0, true
	}
	for ; scale > 0; scale-- {
		if u > maxU/10 {
			return 0, false
		}
		u *= 10
	}
	if u >= maxU {
		return 0, false
	}
	micros = int64(u)
	if neg {
		micros = -micros
		if truncated {
			micros--
		}
	}
	if micros < MinMicros || micros > MaxMicros {
		return 0, false
	}
	return micros, true
}
