package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"time"
)

const header = "<?xml version='1.0'?>"

// xapiTime is how XAPI writes a dateTime.iso8601: basic date, UTC, "Z".
const xapiTime = "20060102T15:04:05Z"

// EncodeResponse writes a successful <methodResponse> carrying v.
//
// Supported values: nil (written as an empty string, XAPI having no null),
// string, bool, every integer type (written as an untyped string value, as
// XAPI does), float32/float64 (<double>), time.Time (<dateTime.iso8601> in
// UTC, e.g. 20240420T12:00:00Z, sub-second part dropped), []byte (<base64>),
// slices and arrays (<array>), maps with string keys (<struct>, keys sorted
// so the output is deterministic), pointers and interfaces to any of these.
// Types with a string or numeric kind (XAPI enums, say) encode by kind.
// Structs, channels, functions and complex numbers are rejected.
//
// Strings are escaped; characters XML cannot carry at all (NUL and other
// C0 controls, invalid UTF-8) are replaced with U+FFFD, as encoding/xml does.
//
// Nothing is written unless the whole value encodes, so on error the caller
// can still send a fault instead.
func EncodeResponse(w io.Writer, v any) error {
	var e encoder
	e.b.WriteString(header + "<methodResponse><params><param>")
	if err := e.value(v, 0); err != nil {
		return err
	}
	e.b.WriteString("</param></params></methodResponse>")
	_, err := e.b.WriteTo(w)
	return err
}

// EncodeFault writes a protocol-level fault: Python's xmlrpc.client raises it
// as xmlrpc.client.Fault. XAPI API errors are not faults; return them from
// EncodeResponse as {Status: "Failure", ErrorDescription: [...]}.
//
// Unlike other integers, faultCode is a typed <int>: Python hands it to
// Fault unchanged and callers compare it with numbers.
func EncodeFault(w io.Writer, code int, msg string) error {
	var e encoder
	e.b.WriteString(header + "<methodResponse><fault><value><struct>")
	e.b.WriteString("<member><name>faultCode</name><value><int>")
	e.b.WriteString(strconv.Itoa(code))
	e.b.WriteString("</int></value></member>")
	e.b.WriteString("<member><name>faultString</name><value><string>")
	e.text(msg)
	e.b.WriteString("</string></value></member>")
	e.b.WriteString("</struct></value></fault></methodResponse>")
	_, err := e.b.WriteTo(w)
	return err
}

type encoder struct {
	b bytes.Buffer
}

// value writes <value>v</value>. depth counts enclosing structs and arrays
// (and pointer hops, so that a self-referencing pointer cannot loop forever).
func (e *encoder) value(v any, depth int) error {
	e.b.WriteString("<value>")
	if err := e.inner(v, depth); err != nil {
		return err
	}
	e.b.WriteString("</value>")
	return nil
}

// inner writes the content of a <value>. The type switch covers what a
// simulator usually returns without reflection; anything else goes through
// reflect.
func (e *encoder) inner(v any, depth int) error {
	switch v := v.(type) {
	case nil:
		// XAPI has no null; an empty string is what its "void" results are.
	case string:
		e.text(v)
	case bool:
		if v {
			e.b.WriteString("<boolean>1</boolean>")
		} else {
			e.b.WriteString("<boolean>0</boolean>")
		}
	case int:
		e.b.WriteString(strconv.Itoa(v))
	case int64:
		e.b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		e.double(v, 64)
	case time.Time:
		return e.time(v)
	case []byte:
		e.base64(v)
	default:
		return e.reflect(reflect.ValueOf(v), depth)
	}
	return nil
}

func (e *encoder) reflect(rv reflect.Value, depth int) error {
	switch rv.Kind() {
	case reflect.String:
		e.text(rv.String())
	case reflect.Bool:
		return e.inner(rv.Bool(), depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b.WriteString(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.b.WriteString(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Float32:
		e.double(rv.Float(), 32)
	case reflect.Float64:
		e.double(rv.Float(), 64)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil // like a nil any
		}
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		return e.inner(rv.Elem().Interface(), depth+1)
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			e.base64(rv.Bytes())
			return nil
		}
		return e.array(rv, depth)
	case reflect.Array:
		return e.array(rv, depth)
	case reflect.Map:
		return e.structValue(rv, depth)
	default: // structs (time.Time was handled by inner), chans, funcs, complex

		return fmt.Errorf("xmlrpc: cannot encode %s", rv.Type())
	}
	return nil
}

func (e *encoder) array(rv reflect.Value, depth int) error {
	if depth >= MaxDepth {
		return ErrTooDeep
	}
	e.b.WriteString("<array><data>")
	for i := range rv.Len() {
		if err := e.value(rv.Index(i).Interface(), depth+1); err != nil {
			return err
		}
	}
	e.b.WriteString("</data></array>")
	return nil
}

func (e *encoder) structValue(rv reflect.Value, depth int) error {
	if rv.Type().Key().Kind() != reflect.String {
		return fmt.Errorf("xmlrpc: cannot encode %s: struct member names must be strings", rv.Type())
	}
	if depth >= MaxDepth {
		return ErrTooDeep
	}
	// Sorted keys: Go's map order is random, and tests, fuzz corpora and
	// diffs of captured traffic all want stable bytes.
	keys := rv.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		switch x, y := a.String(), b.String(); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	e.b.WriteString("<struct>")
	for _, k := range keys {
		e.b.WriteString("<member><name>")
		e.text(k.String())
		e.b.WriteString("</name>")
		if err := e.value(rv.MapIndex(k).Interface(), depth+1); err != nil {
			return err
		}
		e.b.WriteString("</member>")
	}
	e.b.WriteString("</struct>")
	return nil
}

// text writes s escaped. xml.EscapeText also escapes \n, \r and \t as
// character references, so they survive XML's newline normalisation.
func (e *encoder) text(s string) {
	_ = xml.EscapeText(&e.b, []byte(s)) // a bytes.Buffer never fails
}

// double uses Go's shortest round-trip form. Python reads it with float(),
// which also accepts its exponents and its NaN, +Inf and -Inf.
func (e *encoder) double(f float64, bits int) {
	e.b.WriteString("<double>")
	e.b.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	e.b.WriteString("</double>")
}

func (e *encoder) time(t time.Time) error {
	t = t.UTC()
	if !encodableYear(t) {
		return fmt.Errorf("xmlrpc: cannot encode %v: year outside 0000..9999", t)
	}
	e.b.WriteString("<dateTime.iso8601>")
	e.b.WriteString(t.Format(xapiTime))
	e.b.WriteString("</dateTime.iso8601>")
	return nil
}

func (e *encoder) base64(b []byte) {
	e.b.WriteString("<base64>")
	e.b.WriteString(base64.StdEncoding.EncodeToString(b))
	e.b.WriteString("</base64>")
}

// encodableYear: the four-digit year of the wire format must not overflow.
func encodableYear(t time.Time) bool {
	return t.Year() >= 0 && t.Year() <= 9999
}
