# The README's commands. `make demo` and `make test` install what they need (idempotent, cached
# under .cache/ and, for the SeaweedFS build, in a per-user cache keyed by its version).

GO        ?= go
GOTEST    ?= $(GO) test
# Whole-suite bound: make test must stay under 15 minutes on a warm 2-core machine.
TEST_TIMEOUT ?= 14m

export CREDSIDECAR_WEED := $(CURDIR)/.cache/bin/weed

.PHONY: all build test demo demo-fail weed deps bench soak fuzz fmt vet clean

all: build

build:
	$(GO) build ./...

## weed: build SeaweedFS (the local STS + S3) once, at the pinned version.
weed:
	@scripts/install-weed.sh

## deps: everything the tests need that Go does not fetch by itself.
deps: weed
	@scripts/install-test-deps.sh

## test: every test, with the race detector (the gate), then every fuzz target for a few seconds.
test: deps
	$(GO) vet ./...
	$(GOTEST) -race -timeout $(TEST_TIMEOUT) ./...
	@scripts/fuzz.sh 5s

## demo: the whole flow on real parts: issuer, projected token, SeaweedFS, sidecar, uploader.
demo: weed
	$(GO) run ./cmd/demo

## demo-fail: the four classic trust-setup mistakes, each failing with its diagnosis.
demo-fail: weed
	$(GO) run ./cmd/demo -fail

## bench: benchmarks and the markdown report under bench/results/.
bench: deps
	$(GO) run ./bench

## soak: long runs that stay out of make test.
soak: deps
	$(GOTEST) -race -run Soak -timeout 30m -tags soak ./...

## fuzz: every fuzz target for 10 minutes.
fuzz:
	@scripts/fuzz.sh 10m

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf .cache/bin bin
