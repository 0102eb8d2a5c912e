package xmlrpc

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DecodeCall parses an XML-RPC <methodCall>. A call without <params> yields
// an empty params slice. See the package comment for the value types.
func DecodeCall(r io.Reader) (method string, params []any, err error) {
	d := newDecoder(r)
	if err := d.expectStart("methodCall"); err != nil {
		return "", nil, err
	}
	if err := d.expectStart("methodName"); err != nil {
		return "", nil, err
	}
	name, err := d.text()
	if err != nil {
		return "", nil, err
	}
	// Python writes the name bare, but hand-written calls often indent it.
	method = strings.TrimSpace(name)
	if method == "" {
		return "", nil, d.errorf("empty <methodName>")
	}

	params = []any{}
	t, err := d.next()
	if err != nil {
		return "", nil, err
	}
	switch t := t.(type) {
	case xml.EndElement: // </methodCall>: no <params> at all
	case xml.StartElement:
		if t.Name.Local != "params" {
			return "", nil, d.errorf("expected <params>, found <%s>", t.Name.Local)
		}
		if params, err = d.params(); err != nil {
			return "", nil, err
		}
		if err := d.expectEnd("methodCall"); err != nil {
			return "", nil, err
		}
	}
	if err := d.finish(); err != nil {
		return "", nil, err
	}
	return method, params, nil
}

// DecodeResponse parses an XML-RPC <methodResponse>. A successful response
// must carry exactly one param, whose value is returned. A fault is returned
// as a *Fault error.
func DecodeResponse(r io.Reader) (any, error) {
	d := newDecoder(r)
	if err := d.expectStart("methodResponse"); err != nil {
		return nil, err
	}
	t, err := d.next()
	if err != nil {
		return nil, err
	}
	start, ok := t.(xml.StartElement)
	if !ok {
		return nil, d.errorf("empty <methodResponse>")
	}

	var (
		v     any
		fault *Fault
	)
	switch start.Name.Local {
	case "params":
		ps, err := d.params()
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, d.errorf("response has %d params, want 1", len(ps))
		}
		v = ps[0]
	case "fault":
		if err := d.expectStart("value"); err != nil {
			return nil, err
		}
		fv, err := d.value(0)
		if err != nil {
			return nil, err
		}
		if fault, err = toFault(fv); err != nil {
			return nil, d.errorf("%v", err)
		}
		if err := d.expectEnd("fault"); err != nil {
			return nil, err
		}
	default:
		return nil, d.errorf("expected <params> or <fault>, found <%s>", start.Name.Local)
	}
	if err := d.expectEnd("methodResponse"); err != nil {
		return nil, err
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	if fault != nil {
		return nil, fault
	}
	return v, nil
}

// toFault checks the {faultCode, faultString} struct of a fault. Some
// servers send the code as a string, so a numeric string is accepted too.
func toFault(v any) (*Fault, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("fault value is not a struct")
	}
	var code int64
	switch c := m["faultCode"].(type) {
	case int64:
		code = c
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("faultCode %q is not an integer", c)
		}
		code = n
	default:
		return nil, errors.New("fault has no integer faultCode")
	}
	if int64(int(code)) != code { // only matters where int is 32 bits
		return nil, fmt.Errorf("faultCode %d overflows int", code)
	}
	msg, ok := m["faultString"].(string)
	if !ok {
		return nil, errors.New("fault has no string faultString")
	}
	return &Fault{Code: int(code), String: msg}, nil
}

// decoder is a recursive-descent parser over encoding/xml's token stream.
// Tokens rather than xml.Unmarshal, because XML-RPC values are
// self-describing (the child element names the type) and because the
// grammar walk lets us reject anything unexpected at once, which keeps the
// work done on hostile input proportional to its (bounded) size.
type decoder struct {
	x  *xml.Decoder
	lr *limitedReader
}

// messageLimit is MaxMessageSize, as a variable so tests can exercise the
// limit without pushing megabytes through encoding/xml.
var messageLimit int64 = MaxMessageSize

func newDecoder(r io.Reader) *decoder {
	lr := &limitedReader{r: r, n: messageLimit}
	return &decoder{x: xml.NewDecoder(lr), lr: lr}
}

// errorf builds an error carrying the input line, which is what one needs
// when a client's request is rejected.
func (d *decoder) errorf(format string, args ...any) error {
	line, _ := d.x.InputPos()
	return fmt.Errorf("xmlrpc: line %d: %s", line, fmt.Sprintf(format, args...))
}

// token returns the next start element, end element or character data,
// skipping comments and processing instructions (including the <?xml?>
// declaration). The CharData is only valid until the next call; callers copy
// what they keep. encoding/xml already checks that end tags match start tags
// (strict mode), so callers need not.
func (d *decoder) token() (xml.Token, error) {
	for {
		t, err := d.x.Token()
		if err != nil {
			return nil, d.readError(err)
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement, xml.CharData:
			return t, nil
		case xml.Directive:
			// A DTD could declare entities that encoding/xml would not
			// expand anyway; XML-RPC never needs one.
			return nil, d.errorf("DTDs and other <!...> directives are not allowed")
		}
	}
}

func (d *decoder) readError(err error) error {
	switch {
	case d.lr.over:
		return ErrTooLarge
	case err == io.EOF:
		return d.errorf("unexpected end of input")
	}
	return fmt.Errorf("xmlrpc: %w", err)
}

// next is token without whitespace: XML-RPC allows (and Python writes)
// newlines between elements, but any other text there is an error.
func (d *decoder) next() (xml.Token, error) {
	for {
		t, err := d.token()
		if err != nil {
			return nil, err
		}
		cd, ok := t.(xml.CharData)
		if !ok {
			return t, nil
		}
		if !isSpace(cd) {
			return nil, d.errorf("unexpected text %q", clip(cd))
		}
	}
}

func (d *decoder) expectStart(name string) error {
	t, err := d.next()
	if err != nil {
		return err
	}
	if s, ok := t.(xml.StartElement); !ok || s.Name.Local != name {
		return d.errorf("expected <%s>, found %s", name, describe(t))
	}
	return nil
}

// expectEnd consumes the end tag of the current element; name is only for
// the message, encoding/xml having checked that the tags match.
func (d *decoder) expectEnd(name string) error {
	t, err := d.next()
	if err != nil {
		return err
	}
	if _, ok := t.(xml.EndElement); !ok {
		return d.errorf("expected </%s>, found %s", name, describe(t))
	}
	return nil
}

// finish checks that nothing but whitespace, comments and processing
// instructions follow the root element; encoding/xml would happily return
// a second root.
func (d *decoder) finish() error {
	for {
		t, err := d.x.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return d.readError(err)
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement, xml.Directive:
			return d.errorf("unexpected %s after the document", describe(t))
		case xml.CharData:
			if !isSpace(t) {
				return d.errorf("unexpected text %q after the document", clip(t))
			}
		}
	}
}

// text reads the character data of a leaf element up to its end tag.
func (d *decoder) text() (string, error) {
	var b []byte
	for {
		t, err := d.token()
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			return "", d.errorf("unexpected <%s> inside a text element", t.Name.Local)
		case xml.EndElement:
			return string(b), nil
		}
	}
}

// params reads <param><value>...</value></param>... up to </params>.
func (d *decoder) params() ([]any, error) {
	ps := []any{}
	for {
		t, err := d.next()
		if err != nil {
			return nil, err
		}
		s, ok := t.(xml.StartElement)
		if !ok {
			return ps, nil // </params>
		}
		if s.Name.Local != "param" {
			return nil, d.errorf("expected <param>, found <%s>", s.Name.Local)
		}
		if err := d.expectStart("value"); err != nil {
			return nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		if err := d.expectEnd("param"); err != nil {
			return nil, err
		}
		ps = append(ps, v)
	}
}

// value reads the content of a <value> whose start tag has been consumed.
// depth counts the structs and arrays around it.
func (d *decoder) value(depth int) (any, error) {
	var text []byte
	for {
		t, err := d.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			// Untyped: the spec's default type is string, and it is how
			// XAPI sends strings and int64s. Keep the text verbatim.
			return string(text), nil
		case xml.StartElement:
			// Whitespace around a typed element is layout, not content.
			if !isSpace(text) {
				return nil, d.errorf("text %q mixed with <%s> in a <value>", clip(text), t.Name.Local)
			}
			v, err := d.typed(t.Name.Local, depth)
			if err != nil {
				return nil, err
			}
			if err := d.expectEnd("value"); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

// typed reads a typed value whose start tag (named typ) has been consumed,
// through its end tag.
func (d *decoder) typed(typ string, depth int) (any, error) {
	switch typ {
	case "struct", "array":
		if depth >= MaxDepth {
			line, _ := d.x.InputPos()
			return nil, fmt.Errorf("%w (line %d)", ErrTooDeep, line)
		}
		if typ == "struct" {
			return d.structValue(depth)
		}
		return d.arrayValue(depth)
	case "nil":
		if err := d.expectEnd("nil"); err != nil {
			return nil, err
		}
		return nil, nil
	}

	s, err := d.text()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "string":
		return s, nil
	case "int", "i4", "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, d.errorf("bad <%s> %q", typ, clip([]byte(s)))
		}
		return n, nil
	case "boolean":
		switch strings.TrimSpace(s) {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return nil, d.errorf("bad <boolean> %q (want 0 or 1)", clip([]byte(s)))
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, d.errorf("bad <double> %q", clip([]byte(s)))
		}
		return f, nil
	case "dateTime.iso8601":
		t, err := parseTime(s)
		if err != nil {
			return nil, d.errorf("bad <dateTime.iso8601> %q: %v", clip([]byte(s)), err)
		}
		return t, nil
	case "base64":
		// Python wraps base64 at 76 columns; drop all layout first.
		b, err := base64.StdEncoding.DecodeString(stripSpace(s))
		if err != nil {
			return nil, d.errorf("bad <base64>: %v", err)
		}
		return b, nil
	}
	return nil, d.errorf("unknown value type <%s>", typ)
}

func (d *decoder) structValue(depth int) (map[string]any, error) {
	m := map[string]any{}
	for {
		t, err := d.next()
		if err != nil {
			return nil, err
		}
		s, ok := t.(xml.StartElement)
		if !ok {
			return m, nil // </struct>
		}
		if s.Name.Local != "member" {
			return nil, d.errorf("expected <member>, found <%s>", s.Name.Local)
		}
		if err := d.expectStart("name"); err != nil {
			return nil, err
		}
		name, err := d.text()
		if err != nil {
			return nil, err
		}
		if err := d.expectStart("value"); err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := d.expectEnd("member"); err != nil {
			return nil, err
		}
		m[name] = v // a repeated name keeps the last value, as Python does
	}
}

func (d *decoder) arrayValue(depth int) ([]any, error) {
	if err := d.expectStart("data"); err != nil {
		return nil, err
	}
	a := []any{}
	for {
		t, err := d.next()
		if err != nil {
			return nil, err
		}
		s, ok := t.(xml.StartElement)
		if !ok {
			break // </data>
		}
		if s.Name.Local != "value" {
			return nil, d.errorf("expected <value>, found <%s>", s.Name.Local)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	if err := d.expectEnd("array"); err != nil {
		return nil, err
	}
	return a, nil
}

// timeLayouts are tried in order; "Z07:00" accepts both "Z" and "+01:00".
var timeLayouts = []string{
	"20060102T15:04:05Z07:00", // XAPI
	"20060102T15:04:05",       // Python's xmlrpc.client (no zone)
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s) // no zone in the text means UTC
		if err != nil {
			continue
		}
		t = t.UTC()
		if !encodableYear(t) {
			return time.Time{}, errors.New("year out of range 0000..9999")
		}
		return t, nil
	}
	return time.Time{}, errors.New("not an ISO 8601 date-time")
}

// limitedReader fails with ErrTooLarge once more than n bytes arrive.
// Unlike io.LimitReader, which reports a plain EOF, it tells an oversized
// message apart from a truncated one.
type limitedReader struct {
	r    io.Reader
	n    int64 // bytes still allowed
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, ErrTooLarge
	}
	// Ask for at most one byte beyond the limit: enough to detect excess.
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.n {
		l.over = true
		return 0, ErrTooLarge
	}
	l.n -= int64(n)
	return n, err
}

// isSpace reports whether b is XML whitespace only.
func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

// clip shortens text quoted in error messages, which may end up in logs.
func clip(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

func describe(t xml.Token) string {
	switch t := t.(type) {
	case xml.StartElement:
		return "<" + t.Name.Local + ">"
	case xml.EndElement:
		return "</" + t.Name.Local + ">"
	case xml.Directive:
		return "<!" + clip(t) + ">"
	}
	return "text"
}
