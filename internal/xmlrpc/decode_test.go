package xmlrpc

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// pythonLogin is xmlrpc.client.dumps(("root", "pw", "1.0", "xenha-test"),
// "session.login_with_password") verbatim: Python puts newlines between
// elements, which the decoder must treat as layout.
const pythonLogin = `<?xml version='1.0'?>
<methodCall>
<methodName>session.login_with_password</methodName>
<params>
<param>
<value><string>root</string></value>
</param>
<param>
<value><string>pw</string></value>
</param>
<param>
<value><string>1.0</string></value>
</param>
<param>
<value><string>xenha-test</string></value>
</param>
</params>
</methodCall>
`

func TestDecodeCall(t *testing.T) {
	at := time.Date(2024, 4, 20, 12, 0, 0, 0, time.UTC)
	call := func(params string) string {
		return "<methodCall><methodName>m</methodName><params><param><value>" +
			params + "</value></param></params></methodCall>"
	}
	tests := []struct {
		name   string
		in     string
		method string
		params []any
	}{
		{"python login", pythonLogin, "session.login_with_password",
			[]any{"root", "pw", "1.0", "xenha-test"}},
		{"no params", "<methodCall><methodName>system.listMethods</methodName></methodCall>",
			"system.listMethods", []any{}},
		{"empty params", "<methodCall><methodName> pool.get_all </methodName><params/></methodCall>",
			"pool.get_all", []any{}},
		{"untyped string kept verbatim", call("  OpaqueRef:abc \n"), "m", []any{"  OpaqueRef:abc \n"}},
		{"empty untyped", call(""), "m", []any{""}},
		{"typed string", call("<string>a&amp;b&lt;c&gt;&#34;&#xA;</string>"), "m", []any{"a&b<c>\"\n"}},
		{"cdata and comment", call("a<!-- x --><![CDATA[<b>]]>"), "m", []any{"a<b>"}},
		{"whitespace around typed", call("\n  <int> 42 </int>\n"), "m", []any{int64(42)}},
		{"i4 i8", "<methodCall><methodName>m</methodName><params>" +
			"<param><value><i4>-7</i4></value></param>" +
			"<param><value><i8>9223372036854775807</i8></value></param></params></methodCall>",
			"m", []any{int64(-7), int64(9223372036854775807)}},
		{"booleans", "<methodCall><methodName>m</methodName><params>" +
			"<param><value><boolean>1</boolean></value></param>" +
			"<param><value><boolean>0</boolean></value></param></params></methodCall>",
			"m", []any{true, false}},
		{"double", call("<double>-1.5e3</double>"), "m", []any{-1500.0}},
		{"xapi datetime", call("<dateTime.iso8601>20240420T12:00:00Z</dateTime.iso8601>"), "m", []any{at}},
		{"python datetime", call("<dateTime.iso8601>20240420T12:00:00</dateTime.iso8601>"), "m", []any{at}},
		{"offset datetime", call("<dateTime.iso8601>20240420T14:00:00+02:00</dateTime.iso8601>"), "m", []any{at}},
		{"hyphenated datetime", call("<dateTime.iso8601>2024-04-20T12:00:00Z</dateTime.iso8601>"), "m", []any{at}},
		{"base64 with line breaks", call("<base64>\naGVs\nbG8=\n</base64>"), "m", []any{[]byte("hello")}},
		{"nil", call("<nil/>"), "m", []any{nil}},
		{"namespaced nil", call("<ex:nil/>"), "m", []any{nil}},
		{"empty struct and array", "<methodCall><methodName>m</methodName><params>" +
			"<param><value><struct></struct></value></param>" +
			"<param><value><array><data/></array></value></param></params></methodCall>",
			"m", []any{map[string]any{}, []any{}}},
		{"nested", call(`<struct>
  <member><name>classes</name><value><array><data>
    <value>VM</value><value><string>host</string></value>
  </data></array></value></member>
  <member><name>timeout</name><value><double>30</double></value></member>
  <member><name>dup</name><value>first</value></member>
  <member><name>dup</name><value>last</value></member>
</struct>`), "m", []any{map[string]any{
			"classes": []any{"VM", "host"},
			"timeout": 30.0,
			"dup":     "last",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, params, err := DecodeCall(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("DecodeCall: %v", err)
			}
			if method != tt.method || !reflect.DeepEqual(params, tt.params) {
				t.Errorf("got %q %#v, want %q %#v", method, params, tt.method, tt.params)
			}
		})
	}
}

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"login success", `<?xml version="1.0"?><methodResponse><params><param><value><struct>
<member><name>Status</name><value>Success</value></member>
<member><name>Value</name><value>OpaqueRef:9bd0d1c6-3b65-4d3c-a1e1-4a7c5b1c9e10</value></member>
</struct></value></param></params></methodResponse>`,
			map[string]any{"Status": "Success", "Value": "OpaqueRef:9bd0d1c6-3b65-4d3c-a1e1-4a7c5b1c9e10"}},
		{"failure", `<methodResponse><params><param><value><struct>
<member><name>Status</name><value>Failure</value></member>
<member><name>ErrorDescription</name><value><array><data><value>HOST_IS_SLAVE</value><value>10.0.0.1</value></data></array></value></member>
</struct></value></param></params></methodResponse>`,
			map[string]any{"Status": "Failure", "ErrorDescription": []any{"HOST_IS_SLAVE", "10.0.0.1"}}},
		{"get_all_records", `<methodResponse><params><param><value><struct>
<member><name>Status</name><value>Success</value></member>
<member><name>Value</name><value><struct>
 <member><name>OpaqueRef:vm1</name><value><struct>
  <member><name>name_label</name><value>web &amp; db</value></member>
  <member><name>memory_static_max</name><value>4294967296</value></member>
  <member><name>is_a_template</name><value><boolean>0</boolean></value></member>
  <member><name>VCPUs_at_startup</name><value>2</value></member>
  <member><name>other_config</name><value><struct/></value></member>
  <member><name>last_booted</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>
 </struct></value></member>
</struct></value></member>
</struct></value></param></params></methodResponse>`,
			map[string]any{"Status": "Success", "Value": map[string]any{
				"OpaqueRef:vm1": map[string]any{
					"name_label":        "web & db",
					"memory_static_max": "4294967296",
					"is_a_template":     false,
					"VCPUs_at_startup":  "2",
					"other_config":      map[string]any{},
					"last_booted":       time.Unix(0, 0).UTC(),
				},
			}}},
		{"trailing comment and whitespace", "<methodResponse><params><param><value>x</value></param></params></methodResponse>\n<!-- end -->\n", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResponse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeResponseFault(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Fault
	}{
		{"typed", `<methodResponse><fault><value><struct>
<member><name>faultCode</name><value><int>-32601</int></value></member>
<member><name>faultString</name><value><string>no such method</string></value></member>
</struct></value></fault></methodResponse>`, Fault{-32601, "no such method"}},
		{"untyped code", `<methodResponse><fault><value><struct>
<member><name>faultString</name><value>bad</value></member>
<member><name>faultCode</name><value> 3 </value></member>
</struct></value></fault></methodResponse>`, Fault{3, "bad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodeResponse(strings.NewReader(tt.in))
			var f *Fault
			if !errors.As(err, &f) {
				t.Fatalf("got %#v, %v; want a *Fault", v, err)
			}
			if *f != tt.want {
				t.Errorf("got %+v, want %+v", *f, tt.want)
			}
		})
	}
}

// nested returns n arrays inside each other around an empty string.
func nested(n int) string {
	return strings.Repeat("<array><data><value>", n) + strings.Repeat("</value></data></array>", n)
}

func TestDecodeErrors(t *testing.T) {
	resp := func(value string) string {
		return "<methodResponse><params><param><value>" + value + "</value></param></params></methodResponse>"
	}
	tests := []struct {
		name    string
		in      string
		wantErr error  // checked with errors.Is when set
		want    string // else a substring of the message
	}{
		{"empty", "", nil, "unexpected end of input"},
		{"garbage", "HTTP/1.1 500 Internal Server Error", nil, "unexpected text"},
		{"html", "<html><body>500</body></html>", nil, "expected <methodResponse>"},
		{"truncated", resp("<struct><member><name>Status</name><value>Succ")[:60], nil, "unexpected"},
		{"mismatched tags", "<methodResponse><params></param></methodResponse>", nil, "xmlrpc:"},
		{"no params", "<methodResponse></methodResponse>", nil, "empty <methodResponse>"},
		{"two params", "<methodResponse><params><param><value>a</value></param><param><value>b</value></param></params></methodResponse>",
			nil, "2 params"},
		{"zero params", "<methodResponse><params/></methodResponse>", nil, "0 params"},
		{"second root", resp("x") + "<methodResponse/>", nil, "after the document"},
		{"text after root", resp("x") + "junk", nil, "after the document"},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]>` + resp("&a;"), nil, "directives are not allowed"},
		{"unknown entity", resp("&nbsp;"), nil, "entity"},
		{"unknown type", resp("<float>1</float>"), nil, "unknown value type <float>"},
		{"text mixed with type", resp("x<int>1</int>"), nil, "mixed"},
		{"element in string", resp("<string>a<b/></string>"), nil, "inside a text element"},
		{"two typed", resp("<int>1</int><int>2</int>"), nil, "expected </value>"},
		{"bad int", resp("<int>12x</int>"), nil, "bad <int>"},
		{"int overflow", resp("<i8>9223372036854775808</i8>"), nil, "bad <i8>"},
		{"bad boolean", resp("<boolean>true</boolean>"), nil, "bad <boolean>"},
		{"bad double", resp("<double>one</double>"), nil, "bad <double>"},
		{"bad datetime", resp("<dateTime.iso8601>yesterday</dateTime.iso8601>"), nil, "bad <dateTime.iso8601>"},
		{"datetime beyond 9999", resp("<dateTime.iso8601>99991231T23:00:00-05:00</dateTime.iso8601>"), nil, "year out of range"},
		{"bad base64", resp("<base64>!!!</base64>"), nil, "bad <base64>"},
		{"nil with content", resp("<nil>x</nil>"), nil, "unexpected text"},
		{"member without name", resp("<struct><member><value>x</value></member></struct>"), nil, "expected <name>"},
		{"member without value", resp("<struct><member><name>k</name></member></struct>"), nil, "expected <value>"},
		{"array without data", resp("<array><value>x</value></array>"), nil, "expected <data>"},
		{"fault not a struct", "<methodResponse><fault><value>oops</value></fault></methodResponse>", nil, "not a struct"},
		{"fault without code", "<methodResponse><fault><value><struct></struct></value></fault></methodResponse>", nil, "no integer faultCode"},
		{"too deep", resp(nested(MaxDepth + 1)), ErrTooDeep, ""},
		{"too deep structs", resp(strings.Repeat("<struct><member><name>k</name><value>", MaxDepth+1)), ErrTooDeep, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodeResponse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got %#v, want an error", v)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeCallErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty method", "<methodCall><methodName> </methodName></methodCall>", "empty <methodName>"},
		{"no method", "<methodCall><params/></methodCall>", "expected <methodName>"},
		{"wrong root", "<methodResponse/>", "expected <methodCall>"},
		{"param without value", "<methodCall><methodName>m</methodName><params><param/></params></methodCall>", "expected <value>"},
		{"stray element", "<methodCall><methodName>m</methodName><foo/></methodCall>", "expected <params>"},
		{"truncated", pythonLogin[:len(pythonLogin)/2], "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p, err := DecodeCall(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q %#v %v, want error containing %q", m, p, err, tt.want)
			}
		})
	}
}

func TestDecodeDepthLimitIsInclusive(t *testing.T) {
	in := "<methodResponse><params><param><value>" + nested(MaxDepth) +
		"</value></param></params></methodResponse>"
	v, err := DecodeResponse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("%d nested arrays: %v", MaxDepth, err)
	}
	for range MaxDepth {
		a, ok := v.([]any)
		if !ok || len(a) != 1 {
			t.Fatalf("got %#v, want a one-element array", v)
		}
		v = a[0]
	}
	if v != "" {
		t.Errorf("innermost value %#v, want empty string", v)
	}
}

// endless yields the same byte forever, like a hostile client that never
// stops sending.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestDecodeTooLarge(t *testing.T) {
	// A small limit keeps the test fast, notably under -race.
	defer func(old int64) { messageLimit = old }(messageLimit)
	messageLimit = 1 << 10

	body := io.MultiReader(strings.NewReader("<methodCall><methodName>"), endless('a'))
	if _, _, err := DecodeCall(body); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecodeCall: got %v, want ErrTooLarge", err)
	}
	resp := io.MultiReader(strings.NewReader("<methodResponse><params><param><value>"), endless(' '))
	if _, err := DecodeResponse(resp); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecodeResponse: got %v, want ErrTooLarge", err)
	}
	// A complete document followed by endless whitespace is too large, too.
	tailing := io.MultiReader(strings.NewReader(pythonLogin), endless('\n'))
	if _, _, err := DecodeCall(tailing); !errors.Is(err, ErrTooLarge) {
		t.Errorf("trailing whitespace: got %v, want ErrTooLarge", err)
	}

	// Exactly the limit is still fine.
	head := "<methodCall><methodName>m</methodName><params><param><value>"
	tail := "</value></param></params></methodCall>"
	pad := strings.Repeat("x", int(messageLimit)-len(head)-len(tail))
	_, params, err := DecodeCall(strings.NewReader(head + pad + tail))
	if err != nil || len(params) != 1 || params[0] != pad {
		t.Errorf("message of exactly the limit: err %v", err)
	}
	_, _, err = DecodeCall(strings.NewReader(head + pad + "x" + tail))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte over the limit: got %v, want ErrTooLarge", err)
	}
}
