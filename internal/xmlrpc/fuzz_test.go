package xmlrpc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<Target>/: realistic XAPI and
// Python documents, plus garbage and truncated ones. Beyond "never panic",
// each target checks that whatever decodes can be encoded again and that
// encoding is then a fixed point: decode(encode(v)) encodes to the same
// bytes. Comparing bytes rather than values copes with NaN (never equal to
// itself) and with the designed lossiness (ints become strings once).

func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeResponse(bytes.NewReader(data))
		var fault *Fault
		switch {
		case errors.As(err, &fault):
			checkFaultFixedPoint(t, fault)
		case err == nil:
			checkFixedPoint(t, v)
		}
	})
}

func FuzzDecodeCall(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		method, params, err := DecodeCall(bytes.NewReader(data))
		if err != nil {
			return
		}
		if method == "" || params == nil {
			t.Fatalf("success with method %q, params %#v", method, params)
		}
		checkFixedPoint(t, params)
	})
}

func checkFixedPoint(t *testing.T, v any) {
	t.Helper()
	var first bytes.Buffer
	if err := EncodeResponse(&first, v); err != nil {
		t.Fatalf("decoded value does not encode: %v\nvalue: %#v", err, v)
	}
	v2, err := DecodeResponse(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatalf("own encoding does not decode: %v\n%s", err, first.Bytes())
	}
	var second bytes.Buffer
	if err := EncodeResponse(&second, v2); err != nil {
		t.Fatalf("re-decoded value does not encode: %v", err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatalf("encoding is not a fixed point:\n%s\n%s", first.Bytes(), second.Bytes())
	}
}

func checkFaultFixedPoint(t *testing.T, f *Fault) {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeFault(&b, f.Code, f.String); err != nil {
		t.Fatal(err)
	}
	_, err := DecodeResponse(&b)
	var back *Fault
	if !errors.As(err, &back) {
		t.Fatalf("own fault does not decode as a fault: %v", err)
	}
	// The string may have lost characters XML cannot carry; compare after
	// one more pass, when it is clean.
	var b2 bytes.Buffer
	_ = EncodeFault(&b2, back.Code, back.String)
	_, err = DecodeResponse(&b2)
	var again *Fault
	if !errors.As(err, &again) || *again != *back || back.Code != f.Code {
		t.Fatalf("fault %+v came back as %+v then %v", *f, back, err)
	}
}

// TestSeedCorpus pins what each committed seed is for, so an edit to the
// decoder cannot silently turn the realistic seeds into rejected ones (the
// fuzzer would then mutate only error paths).
func TestSeedCorpus(t *testing.T) {
	const (
		ok = iota
		fault
		bad
	)
	tests := []struct {
		target, name string
		want         int
	}{
		{"FuzzDecodeResponse", "login_success", ok},
		{"FuzzDecodeResponse", "void_success", ok},
		{"FuzzDecodeResponse", "failure_host_is_slave", ok},
		{"FuzzDecodeResponse", "failure_session_invalid", ok},
		{"FuzzDecodeResponse", "vm_get_all_records", ok},
		{"FuzzDecodeResponse", "python_struct", ok},
		{"FuzzDecodeResponse", "all_types", ok},
		{"FuzzDecodeResponse", "python_fault", fault},
		{"FuzzDecodeResponse", "truncated_records", bad},
		{"FuzzDecodeResponse", "truncated_mid_tag", bad},
		{"FuzzDecodeResponse", "garbage_html", bad},
		{"FuzzDecodeResponse", "garbage_binary", bad},
		{"FuzzDecodeResponse", "doctype_entities", bad},
		{"FuzzDecodeResponse", "deep_nesting", bad},
		{"FuzzDecodeResponse", "empty", bad},
		{"FuzzDecodeCall", "login_with_password", ok},
		{"FuzzDecodeCall", "vm_get_all_records", ok},
		{"FuzzDecodeCall", "event_from", ok},
		{"FuzzDecodeCall", "all_types", ok},
		{"FuzzDecodeCall", "list_methods", ok},
		{"FuzzDecodeCall", "vm_start_untyped", ok},
		{"FuzzDecodeCall", "truncated_login", bad},
		{"FuzzDecodeCall", "member_without_name", bad},
		{"FuzzDecodeCall", "garbage_http", bad},
		{"FuzzDecodeCall", "two_roots", bad},
		{"FuzzDecodeCall", "empty", bad},
	}
	for _, tt := range tests {
		t.Run(tt.target+"/"+tt.name, func(t *testing.T) {
			data := readSeed(t, filepath.Join("testdata", "fuzz", tt.target, tt.name))
			var err error
			if tt.target == "FuzzDecodeCall" {
				_, _, err = DecodeCall(bytes.NewReader(data))
			} else {
				_, err = DecodeResponse(bytes.NewReader(data))
			}
			var f *Fault
			got := bad
			switch {
			case err == nil:
				got = ok
			case errors.As(err, &f):
				got = fault
			}
			if got != tt.want {
				t.Errorf("outcome %d (err %v), want %d", got, err, tt.want)
			}
		})
	}
}

// readSeed reads a one-value "go test fuzz v1" file holding []byte("...").
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(string(b), "\n")
	body = strings.TrimSpace(body)
	if header != "go test fuzz v1" || !strings.HasPrefix(body, "[]byte(") || !strings.HasSuffix(body, ")") {
		t.Fatalf("%s: not a one-value go test fuzz v1 file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(body, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
