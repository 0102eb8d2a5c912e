package xapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// maxResponseBytes bounds what one answer may use. get_all_records of a
// large pool's VMs is tens of MB; anything past this is not a sane answer.
const maxResponseBytes = 256 << 20

// ErrMalformedResponse is wrapped by DecodeResponse when the body is not a
// JSON-RPC response. The client reports it inside a *TransportError.
var ErrMalformedResponse = errors.New("xapi: malformed JSON-RPC response")

type rpcRequest struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
	ID      uint64 `json:"id"`
}

// encodeRequest builds a JSON-RPC 2.0 request. It always carries an id and
// a params array: xapi answers a request without "jsonrpc":"2.0" in the
// v1 shape, and a null params is not a list.
func encodeRequest(method string, params []any, id uint64) ([]byte, error) {
	if params == nil {
		params = []any{}
	}
	b, err := json.Marshal(rpcRequest{JSONRPC: "2.0", Method: method, Params: params, ID: id})
	if err != nil {
		return nil, fmt.Errorf("xapi: encode %s request: %w", method, err)
	}
	return b, nil
}

// DecodeResponse extracts the result of a JSON-RPC response body, or the
// API failure it carries as *Error. It accepts every shape xapi sends:
//
//	{"jsonrpc":"2.0","result":X,"id":N}                                      success
//	{"jsonrpc":"2.0","error":{"code":1,"message":"CODE","data":[...]},"id":N} v2 failure
//	{"jsonrpc":"2.0","error":["CODE",...],"id":0}                             emergency mode
//	{"result":null,"error":["CODE",...],"id":"x"}                             v1 failure
//
// Anything else gives an error wrapping ErrMalformedResponse. Ids are not
// checked: the emergency shape always says 0.
func DecodeResponse(body []byte) (json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	if env == nil { // the body was "null"
		return nil, fmt.Errorf("%w: not an object", ErrMalformedResponse)
	}
	if raw, ok := env["error"]; ok && !isNull(raw) {
		apiErr, err := decodeError(raw)
		if err != nil {
			return nil, err
		}
		return nil, apiErr
	}
	res, ok := env["result"]
	if !ok {
		return nil, fmt.Errorf("%w: neither result nor error", ErrMalformedResponse)
	}
	return res, nil
}

func decodeError(raw json.RawMessage) (*Error, error) {
	switch firstByte(raw) {
	case '[': // v1 and emergency shapes: [code, params...]
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("%w: error array: %v", ErrMalformedResponse, err)
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("%w: empty error array", ErrMalformedResponse)
		}
		code := looseString(items[0])
		if code == "" {
			return nil, fmt.Errorf("%w: error without a code", ErrMalformedResponse)
		}
		return &Error{Code: code, Params: looseStrings(items[1:])}, nil
	case '{': // v2 shape
		var obj struct {
			Message json.RawMessage `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%w: error object: %v", ErrMalformedResponse, err)
		}
		code := looseString(obj.Message)
		if code == "" {
			return nil, fmt.Errorf("%w: error without a message", ErrMalformedResponse)
		}
		return &Error{Code: code, Params: dataParams(obj.Data)}, nil
	case '"': // not seen from xapi; a bare code is still a code
		if code := looseString(raw); code != "" {
			return &Error{Code: code}, nil
		}
	}
	return nil, fmt.Errorf("%w: unrecognised error value", ErrMalformedResponse)
}

// dataParams reads v2 "data": always an array of strings from xapi, but a
// lone value is kept rather than lost.
func dataParams(raw json.RawMessage) []string {
	if len(raw) == 0 || isNull(raw) {
		return []string{}
	}
	if firstByte(raw) == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err == nil {
			return looseStrings(items)
		}
	}
	return []string{looseString(raw)}
}

// looseString returns a JSON string's value, or the raw JSON text of any
// other value (numbers in params should not make a failure undecodable).
func looseString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

func looseStrings(items []json.RawMessage) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = looseString(it)
	}
	return out
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func firstByte(raw json.RawMessage) byte {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return 0
	}
	return t[0]
}

// transport posts JSON-RPC requests to one endpoint.
type transport struct {
	endpoint string // <base>/jsonrpc, without userinfo
	http     *http.Client
	nextID   atomic.Uint64
}

// roundTrip sends one request and decodes the answer. It returns *Error for
// API failures and *TransportError when no XenAPI answer was obtained. ctx
// must carry the deadline: the http.Client has no timeout of its own, so
// long polls work.
func (t *transport) roundTrip(ctx context.Context, method string, params []any) (json.RawMessage, error) {
	fail := func(err error) error {
		var ue *url.Error
		if errors.As(err, &ue) { // drop its copy of the URL: we print ours
			err = ue.Err
		}
		return &TransportError{URL: t.endpoint, Method: method, Err: err}
	}
	body, err := encodeRequest(method, params, t.nextID.Add(1))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if replayable(method) {
		// A nil Idempotency-Key is not sent, but lets net/http resend the
		// request when a kept-alive connection turns out to have been
		// closed by the host. Without it such a race on a read-only call
		// (or a probe's login) would look like an unreachable host.
		req.Header["Idempotency-Key"] = nil
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fail(fmt.Errorf("read response: %w", err))
	}
	if len(data) > maxResponseBytes {
		return nil, fail(fmt.Errorf("response larger than %d bytes", maxResponseBytes))
	}
	// API failures come with HTTP 200; anything else (500 with an HTML
	// page for a malformed request) is not a XenAPI answer. The body is
	// not quoted: it is not ours to print.
	if resp.StatusCode != http.StatusOK {
		return nil, fail(fmt.Errorf("HTTP %s", resp.Status))
	}
	res, err := DecodeResponse(data)
	if err != nil {
		if apiErr, ok := err.(*Error); ok {
			return nil, apiErr
		}
		return nil, fail(err)
	}
	return res, nil
}

// replayable reports methods that are safe to send twice: reads, logins
// (a duplicate only leaves a session to expire) and event.from.
func replayable(method string) bool {
	_, name, _ := strings.Cut(method, ".")
	return strings.HasPrefix(name, "get_") || name == "from" ||
		name == "login_with_password" || name == "slave_local_login_with_password"
}
