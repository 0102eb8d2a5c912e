# xenha-bridge: `make run` and `make test` are the two commands README promises.
GO       ?= go
BIN      := bin/xenha-bridge
TOOLS    := $(abspath bin/tools)
VENV     := .venv
FUZZTIME ?= 30s
# The version the binary reports (`xenha-bridge version`).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
IMAGE    := bin/xenha-bridge-image.tar

BUF                := $(TOOLS)/buf
PROTOC_GEN_GO      := $(TOOLS)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS)/protoc-gen-go-grpc
GRPCURL            := $(TOOLS)/grpcurl

.PHONY: build run image test check proto proto-check peers test-go test-python tools chaos fuzz bench clean

# A Debian package a target needs, installed when its command is missing.
define apt_need
@command -v $(1) >/dev/null || { \
  echo "installing Debian's $(2) ($(1), $(3))"; \
  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2); \
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2); fi; }
endef

# The binary; `bin/xenha-bridge status`, `health` and `journal` talk to a
# running bridge (README: The operator's view).
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/xenha-bridge

# The gRPC service on 127.0.0.1:50051 with an embedded simulated 3-host pool
# ("sim"; its control endpoint on 127.0.0.1:50052), until Ctrl-C.
run: build
	./$(BIN) serve --simulate

# The sidecar image (deploy/Containerfile): the static binary on an empty
# base, built by buildah without a Docker engine or any pull, into an OCI
# archive ($(IMAGE)).
image:
	$(call apt_need,buildah,buildah,which builds the image)
	VERSION=$(VERSION) GO=$(GO) deploy/build-image.sh $(IMAGE)

# Everything: formatting, vet, the API checks, Go tests with the race
# detector (fuzz seed corpora included), the official XenAPI Python SDK
# against the simulator, and README's and docs/'s commands run as printed.
test: check proto-check test-go test-python test-java

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Tools are installed by version from the Go module proxy into bin/tools
# (buf builds in a couple of minutes the first time).
$(BUF):
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@v1.75.0
$(PROTOC_GEN_GO):
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
$(GRPCURL):
	GOBIN=$(TOOLS) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
tools: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(GRPCURL)

# Regenerate the Go code beside the .proto files.
proto: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	PATH="$(TOOLS):$$PATH" $(BUF) generate

# Lint, refuse breaking changes against every earlier version of the API in
# history, and refuse generated code that is not what the .proto gives.
proto-check: proto
	$(BUF) lint
	@for rev in $$(git log --format=%H -- proto/); do \
	  echo "buf breaking against $$rev"; \
	  $(BUF) breaking --against ".git#ref=$$rev" || exit 1; \
	done
	@git diff --exit-code -- proto/ || { echo "generated code is stale: run make proto and commit"; exit 1; }

# The Go tests drive real peers: sushy-emulator (Redfish, from .venv),
# ipmi_sim (IPMI, Debian's openipmi) and mariadbd (the shared store of
# several management servers; the tests start their own on loopback, the
# packages start no service); the deploy tests build and run the
# image with buildah, check the systemd unit with systemd-analyze and the
# alerting rules with promtool and a real Prometheus (Debian's prometheus;
# the tests start their own on loopback). The Debian packages are installed
# here when missing (XENHA_SKIP_IMAGE=1, XENHA_SKIP_SYSTEMD=1 and
# XENHA_SKIP_PROMETHEUS=1 skip those tests and their packages). The docs'
# commands (tests/python/test_docs.py) use the same peers, and jq.
peers:
	$(call apt_need,ipmi_sim,openipmi,the IPMI peer of the tests)
	$(call apt_need,mariadb-install-db,mariadb-server-core,the MariaDB of the shared-store tests)
	$(call apt_need,my_print_defaults,mariadb-client-core,which mariadb-install-db needs)
	$(call apt_need,jq,jq,which a command of docs/operator.md pipes the logs through)
	$(if $(filter 1,$(XENHA_SKIP_IMAGE)),,$(call apt_need,buildah,buildah,which the image test builds and runs the image with))
	$(if $(filter 1,$(XENHA_SKIP_SYSTEMD)),,$(call apt_need,systemd-analyze,systemd,which checks the unit file))
	$(if $(filter 1,$(XENHA_SKIP_PROMETHEUS)),,$(call apt_need,promtool,prometheus,which checks the alerting rules and runs them in a real Prometheus))

test-go: peers $(VENV)/.installed
	XENHA_VENV=$(abspath $(VENV)) $(GO) test -race -count=1 ./...

$(VENV)/.installed: tests/python/requirements.txt tests/redfish/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt -r tests/redfish/requirements.txt
	touch $@

# The official XenAPI Python SDK against the simulator, README's commands
# and docs/'s as printed (those for a production host on a scratch host:
# tests/python/test_docs.py).
test-python: build $(GRPCURL) $(VENV)/.installed peers
	XENHA_BRIDGE=$(abspath $(BIN)) GRPCURL=$(GRPCURL) $(VENV)/bin/pytest -q tests/python tests/plugins

# Randomized fault schedules (make test runs about 250, under the race
# detector): thousands, from a fresh seed base each run (-chaos.first,
# printed first; CHAOS_FIRST=f runs the same schedules again), 20 at once
# (about 240 a minute on 2 cores); or one seed again with SEED=n (printed
# by a failing schedule). Seeds are 1000003*(i+first)+17.
CHAOS_N        ?= 3000
CHAOS_PARALLEL ?= 20
chaos:
ifdef SEED
	$(GO) test -count=1 -run '^TestChaos$$' ./chaos -v -chaos.seed=$(SEED)
else
	@first=$(or $(CHAOS_FIRST),$$(( $$(date +%s) * 1000 ))); \
	echo "chaos: seed base -chaos.first=$$first: seeds 1000003*(i+$$first)+17 for i < $(CHAOS_N); a failure replays with make chaos SEED=n, the whole run with CHAOS_FIRST=$$first"; \
	echo "$(GO) test -count=1 -run '^TestChaos\$$' ./chaos -v -timeout 2h -chaos.n=$(CHAOS_N) -chaos.time=90m -chaos.parallel=$(CHAOS_PARALLEL) -chaos.first=$$first"; \
	$(GO) test -count=1 -run '^TestChaos$$' ./chaos -v -timeout 2h -chaos.n=$(CHAOS_N) -chaos.time=90m -chaos.parallel=$(CHAOS_PARALLEL) -chaos.first=$$first
endif

# Run each fuzz target for FUZZTIME (the seed corpora run in `make test`).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeResponse$$' -fuzztime=$(FUZZTIME) ./xapi/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeResponse$$' -fuzztime=$(FUZZTIME) ./internal/xmlrpc/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeCall$$' -fuzztime=$(FUZZTIME) ./internal/xmlrpc/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=0 ./config/
	$(GO) test -run='^$$' -fuzz='^FuzzRequests$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=0 ./server/

# Benchmarks (not tests): results go to docs/bench.md by hand. The -e2e
# runs (whole failovers on the real clock with production timeouts) take
# about 7 minutes.
bench:
	$(GO) run ./cmd/xenha-bench
	$(GO) run ./cmd/xenha-bench -fence 10
	$(GO) run ./cmd/xenha-bench -failover 5
	$(GO) run ./cmd/xenha-bench -e2e 5
	$(GO) test -run '^$$' -bench . -benchtime 2s -benchmem ./mysqlstore

# The Java shim (java-shim/): unit tests, the relocated CloudStack bundle, and
# the end-to-end tests against bin/xenha-bridge on the simulator (about two
# minutes of them wait for a storage heartbeat to go stale on the real clock).
# Dependencies come from Maven Central; needs Java 11+ and Maven 3.8+.
test-java: build
	mvn -B -ntp -f java-shim/pom.xml verify

clean:
	rm -rf bin $(VENV) java-shim/target java-shim/*/target
