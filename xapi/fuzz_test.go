package xapi

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeResponse checks that no body, however broken, makes the decoder
// panic or break its contract. Seeds live in testdata/fuzz/FuzzDecodeResponse.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","result":"OpaqueRef:1","id":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := DecodeResponse(body)
		if err == nil {
			if !json.Valid(res) {
				t.Fatalf("result %q is not valid JSON", res)
			}
			// The record and event decoders must not panic either.
			var batch EventBatch
			if json.Unmarshal(res, &batch) == nil {
				for _, e := range batch.Events {
					var vm VMRecord
					_ = e.DecodeSnapshot(&vm)
				}
			}
			var hosts map[HostRef]HostRecord
			_ = json.Unmarshal(res, &hosts)
			return
		}
		if res != nil {
			t.Fatalf("result %q returned with error %v", res, err)
		}
		if e, ok := AsError(err); ok {
			if e.Code == "" {
				t.Fatalf("API error without a code from %q", body)
			}
			_ = e.Error()
			return
		}
		if !errors.Is(err, ErrMalformedResponse) {
			t.Fatalf("error %v is neither *Error nor ErrMalformedResponse", err)
		}
	})
}
