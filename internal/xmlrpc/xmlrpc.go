// Package xmlrpc is a small XML-RPC codec shaped by what XAPI (the XenServer /
// XCP-ng toolstack) puts on the wire, so that a simulated XAPI server can be
// driven by the official XenAPI Python SDK, which uses Python's xmlrpc.client.
//
// Type mapping, decoding (DecodeCall, DecodeResponse):
//
//	<string>, untyped <value>text</value>   string (text kept verbatim, whitespace included)
//	<int>, <i4>, <i8>                       int64 (all three accept the full 64-bit range)
//	<boolean>                               bool ("0" or "1", as the XML-RPC spec says)
//	<double>                                float64
//	<dateTime.iso8601>                      time.Time in UTC (see below)
//	<base64>                                []byte
//	<struct>                                map[string]any (never nil)
//	<array>                                 []any (never nil)
//	<nil/>                                  nil
//
// Element names are matched without their namespace prefix, as Python's
// client does, so the <ex:nil/> and <ex:i8> of Apache XML-RPC are understood.
// Attributes, comments and processing instructions are ignored; DTDs are
// rejected. Only UTF-8 (the default, and what Python sends) is accepted.
//
// Date-times: XAPI writes "20240420T12:00:00Z"; Python's xmlrpc.client writes
// "20240420T12:00:00" with no zone. Both parse, a missing zone meaning UTC
// (XAPI's convention), and hyphenated ISO 8601 dates are accepted too. They
// decode to time.Time rather than a string so that handlers compare instants,
// not spellings. Years outside 0000..9999 are rejected: they cannot be written
// back in the four-digit form.
//
// Encoding (EncodeResponse) mirrors XAPI rather than Python: strings and all
// integers travel as untyped <value>text</value>, because XAPI sends its int64
// fields that way (XML-RPC's <int> is only 32 bits wide), so a Python caller
// sees the integer 42 as the str '42', exactly as it would from a real host.
// Encoding then decoding therefore turns integers into decimal strings and nil
// into "", by design.
//
// The decoders never panic, reject input larger than MaxMessageSize with
// ErrTooLarge and values nested deeper than MaxDepth with ErrTooDeep, so they
// are safe to point at untrusted request bodies.
package xmlrpc

import (
	"errors"
	"fmt"
)

const (
	// MaxDepth bounds how many structs and arrays may nest inside each other,
	// so hostile input cannot drive the recursive decoder into huge stacks.
	// XAPI's deepest real value (a get_all_records map of records holding
	// maps) nests three levels, so 64 is generous. The encoder enforces the
	// same bound, so anything it writes can be read back.
	MaxDepth = 64

	// MaxMessageSize bounds how many bytes a decoder reads. Large pools
	// produce multi-megabyte get_all_records and event.from answers, hence
	// the headroom; callers wanting a tighter bound can wrap the reader in
	// io.LimitReader as well.
	MaxMessageSize = 16 << 20
)

var (
	// ErrTooLarge reports input longer than MaxMessageSize.
	ErrTooLarge = errors.New("xmlrpc: message larger than MaxMessageSize")
	// ErrTooDeep reports values nested deeper than MaxDepth.
	ErrTooDeep = errors.New("xmlrpc: value nested deeper than MaxDepth")
)

// Fault is an XML-RPC protocol-level fault (<methodResponse><fault>).
// DecodeResponse returns it as its error. XAPI API errors are not faults:
// they are ordinary results of the form
// {Status: "Failure", ErrorDescription: [code, params...]}.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string {
	return fmt.Sprintf("xmlrpc: fault %d: %s", f.Code, f.String)
}
