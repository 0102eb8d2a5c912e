package xmlrpc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// wire returns what v should look like after EncodeResponse and
// DecodeResponse: the XAPI conventions turn integers into decimal strings
// and nil into "", times lose their zone and sub-second part, and every
// slice or map becomes []any or map[string]any.
func wire(v any) any {
	switch v := v.(type) {
	case nil:
		return ""
	case string, bool, float64:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case time.Time:
		return v.UTC().Truncate(time.Second)
	case []byte:
		return append([]byte{}, v...)
	case []string:
		a := []any{}
		for _, s := range v {
			a = append(a, s)
		}
		return a
	case []any:
		a := []any{}
		for _, e := range v {
			a = append(a, wire(e))
		}
		return a
	case map[string]string:
		m := map[string]any{}
		for k, e := range v {
			m[k] = e
		}
		return m
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			m[k] = wire(e)
		}
		return m
	}
	panic(fmt.Sprintf("wire: unexpected %T", v))
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeResponse(&b, v); err != nil {
		t.Fatalf("EncodeResponse(%#v): %v", v, err)
	}
	got, err := DecodeResponse(&b)
	if err != nil {
		t.Fatalf("DecodeResponse of EncodeResponse(%#v): %v", v, err)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{"empty string", ""},
		{"whitespace survives", "  \n\t\r\n  "},
		{"markup", `<value>&amp;</value> ' "`},
		{"unicode", "ünïcødé ☃ 𝄞"},
		{"ref", "OpaqueRef:NULL"},
		{"int64 max", int64(math.MaxInt64)},
		{"int64 min", int64(math.MinInt64)},
		{"int", -1},
		{"bools", []any{true, false}},
		{"doubles", []any{0.0, -0.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1)}},
		{"time", time.Date(2024, 4, 20, 12, 0, 0, 0, time.UTC)},
		{"time with zone and nanos", time.Date(2024, 4, 20, 12, 0, 0, 999, time.FixedZone("CEST", 7200))},
		{"epoch", time.Unix(0, 0)},
		{"year 0 and 9999", []any{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}},
		{"empty bytes", []byte{}},
		{"binary", []byte{0, 1, 2, 0xff, '<', '&'}},
		{"nil", nil},
		{"empty collections", []any{[]any{}, map[string]any{}, []string{}, map[string]string{}}},
		{"xapi success", map[string]any{"Status": "Success", "Value": "OpaqueRef:abc"}},
		{"xapi failure", map[string]any{"Status": "Failure", "ErrorDescription": []string{"HOST_IS_SLAVE", "10.0.0.1"}}},
		{"get_all_records", map[string]any{"Status": "Success", "Value": map[string]any{
			"OpaqueRef:vm1": map[string]any{
				"uuid":              "6f1e6c3a-0000-4000-8000-000000000001",
				"power_state":       "Running",
				"memory_static_max": int64(4294967296),
				"VCPUs_max":         2,
				"is_a_template":     false,
				"other_config":      map[string]string{"ha_restart_priority": "restart"},
				"tags":              []string{},
				"resident_on":       "OpaqueRef:host1",
				"last_booted":       time.Date(2024, 4, 20, 12, 0, 0, 0, time.UTC),
			},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roundTrip(t, tt.in)
			if want := wire(tt.in); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}
}

// TestRoundTripRandom checks the same property on generated values, with a
// fixed seed so failures reproduce.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		v := randomValue(r, 0)
		got := roundTrip(t, v)
		if want := wire(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("value %d: got %#v\nwant %#v", i, got, want)
		}
	}
}

// runes mixes XML metacharacters, whitespace and multi-byte characters.
var runes = []rune("aZ09 _-:.<>&'\"\t\n\r]]>ü☃𝄞\u0085\u2028")

func randomString(r *rand.Rand) string {
	s := make([]rune, r.IntN(12))
	for i := range s {
		s[i] = runes[r.IntN(len(runes))]
	}
	return string(s)
}

func randomValue(r *rand.Rand, depth int) any {
	kinds := 12
	if depth >= 4 { // keep the trees small; depth limits have their own tests
		kinds = 8
	}
	switch r.IntN(kinds) {
	case 0:
		return randomString(r)
	case 1:
		return int64(r.Uint64())
	case 2:
		return r.IntN(2) == 1
	case 3:
		f := math.Float64frombits(r.Uint64()) // any bits: subnormals, ±Inf too
		if math.IsNaN(f) {                    // but NaN != NaN for DeepEqual
			f = 0
		}
		return f
	case 4:
		return time.Unix(r.Int64N(253402300800), r.Int64N(1e9)) // years 1970..9999
	case 5:
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case 6:
		return nil
	case 7:
		return r.IntN(1000) - 500
	case 8:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	case 9:
		m := map[string]any{}
		for range r.IntN(4) {
			m[randomString(r)] = randomValue(r, depth+1)
		}
		return m
	case 10:
		return []string{randomString(r), randomString(r)}
	default:
		return map[string]string{randomString(r): randomString(r)}
	}
}
