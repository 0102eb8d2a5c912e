package xmlrpc

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// powerState stands for the string enums the simulator's datamodel defines.
type powerState string

func TestEncodeResponse(t *testing.T) {
	ref := "OpaqueRef:9bd0d1c6-3b65-4d3c-a1e1-4a7c5b1c9e10"
	n := 7
	tests := []struct {
		name string
		in   any
		want string // the inside of the outer <value>
	}{
		{"nil is an empty string", nil, ""},
		{"string", ref, ref},
		{"escaping", `<a href="x">&'` + "\n\r\t", "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&#xA;&#xD;&#x9;"},
		{"invalid XML chars replaced", "a\x00b\xffc", "a\uFFFDb\uFFFDc"},
		{"true", true, "<boolean>1</boolean>"},
		{"false", false, "<boolean>0</boolean>"},
		{"int as string", 42, "42"},
		{"int64 as string", int64(-1) << 62, "-4611686018427387904"},
		{"uint64 as string", uint64(math.MaxUint64), "18446744073709551615"},
		{"int8", int8(-3), "-3"},
		{"double", 0.1, "<double>0.1</double>"},
		{"float32", float32(0.1), "<double>0.1</double>"},
		{"whole double", 30.0, "<double>30</double>"},
		{"big double", 1e21, "<double>1e+21</double>"},
		{"infinity", math.Inf(-1), "<double>-Inf</double>"},
		{"time in xapi format", time.Date(2024, 4, 20, 14, 0, 0, 5e8, time.FixedZone("x", 7200)),
			"<dateTime.iso8601>20240420T12:00:00Z</dateTime.iso8601>"},
		{"bytes", []byte("hello"), "<base64>aGVsbG8=</base64>"},
		{"enum", powerState("Running"), "Running"},
		{"pointer", &n, "7"},
		{"nil pointer", (*int)(nil), ""},
		{"[]string", []string{"a", "b"}, "<array><data><value>a</value><value>b</value></data></array>"},
		{"nil slice", []any(nil), "<array><data></data></array>"},
		{"array", [2]int{1, 2}, "<array><data><value>1</value><value>2</value></data></array>"},
		{"map sorted", map[string]string{"b": "2", "a": "1", "B": "0"},
			"<struct><member><name>B</name><value>0</value></member>" +
				"<member><name>a</name><value>1</value></member>" +
				"<member><name>b</name><value>2</value></member></struct>"},
		{"escaped key", map[string]int{"<&>": 1}, "<struct><member><name>&lt;&amp;&gt;</name><value>1</value></member></struct>"},
		{"xapi failure", map[string]any{"Status": "Failure", "ErrorDescription": []string{"HOST_IS_SLAVE", "10.0.0.1"}},
			"<struct><member><name>ErrorDescription</name><value><array><data>" +
				"<value>HOST_IS_SLAVE</value><value>10.0.0.1</value></data></array></value></member>" +
				"<member><name>Status</name><value>Failure</value></member></struct>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := EncodeResponse(&b, tt.in); err != nil {
				t.Fatalf("EncodeResponse: %v", err)
			}
			want := "<?xml version='1.0'?><methodResponse><params><param><value>" +
				tt.want + "</value></param></params></methodResponse>"
			if b.String() != want {
				t.Errorf("got  %s\nwant %s", b.String(), want)
			}
		})
	}
}

func TestEncodeResponseErrors(t *testing.T) {
	cyclic := make([]any, 1)
	cyclic[0] = cyclic // the slice header copy shares the backing array
	loop := map[string]any{}
	loop["self"] = loop
	type selfPtr *selfPtr
	var p selfPtr
	p = &p

	tests := []struct {
		name    string
		in      any
		wantErr error
	}{
		{"struct", struct{ A int }{1}, nil},
		{"chan", make(chan int), nil},
		{"func", func() {}, nil},
		{"complex", 1i, nil},
		{"int keys", map[int]string{1: "a"}, nil},
		{"nested unsupported", map[string]any{"ok": 1, "bad": []any{struct{}{}}}, nil},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{"negative year", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{"cyclic slice", cyclic, ErrTooDeep},
		{"cyclic map", loop, ErrTooDeep},
		{"cyclic pointer", p, ErrTooDeep},
		{"too deep", deepArray(MaxDepth + 1), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := EncodeResponse(&b, tt.in)
			if err == nil {
				t.Fatalf("got %s, want an error", b.String())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", b.Len())
			}
		})
	}
	if err := EncodeResponse(&bytes.Buffer{}, deepArray(MaxDepth)); err != nil {
		t.Errorf("%d nested arrays: %v", MaxDepth, err)
	}
}

func deepArray(n int) any {
	var v any = "leaf"
	for range n {
		v = []any{v}
	}
	return v
}

func TestEncodeFault(t *testing.T) {
	var b bytes.Buffer
	if err := EncodeFault(&b, -32601, "no method <x>"); err != nil {
		t.Fatal(err)
	}
	want := "<?xml version='1.0'?><methodResponse><fault><value><struct>" +
		"<member><name>faultCode</name><value><int>-32601</int></value></member>" +
		"<member><name>faultString</name><value><string>no method &lt;x&gt;</string></value></member>" +
		"</struct></value></fault></methodResponse>"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}

	_, err := DecodeResponse(strings.NewReader(b.String()))
	var f *Fault
	if !errors.As(err, &f) || *f != (Fault{-32601, "no method <x>"}) {
		t.Errorf("decoding it back: %v", err)
	}
}
