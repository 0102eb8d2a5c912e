# xenha-bridge: `make run` and `make test` are the two commands README promises.
GO       ?= go
BIN      := bin/xenha-bridge
VENV     := .venv
FUZZTIME ?= 30s

.PHONY: build run test check test-go test-python fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/xenha-bridge

# A simulated three-host pool on loopback, until Ctrl-C.
run: build
	./$(BIN) sim --hosts 3 -v

# Everything: formatting and vet, Go tests with the race detector (fuzz
# seed corpora included), and the official XenAPI Python SDK against the
# simulator.
test: check test-go test-python

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 ./...

$(VENV)/.installed: tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

test-python: build $(VENV)/.installed
	XENHA_BRIDGE=$(abspath $(BIN)) $(VENV)/bin/pytest -q tests/python

# Run each fuzz target for FUZZTIME (the seed corpora run in `make test`).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeResponse$$' -fuzztime=$(FUZZTIME) ./xapi/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeResponse$$' -fuzztime=$(FUZZTIME) ./internal/xmlrpc/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeCall$$' -fuzztime=$(FUZZTIME) ./internal/xmlrpc/

clean:
	rm -rf bin $(VENV)
