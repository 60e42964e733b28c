# The README's commands. `make demo` and `make test` install what they need (idempotent, cached
# under .cache/ and, for the SeaweedFS build, in a per-user cache keyed by its version).

GO        ?= go
GOTEST    ?= $(GO) test
# Whole-suite bound: make test must stay under 15 minutes on a warm 2-core machine.
TEST_TIMEOUT ?= 14m

export CREDSIDECAR_WEED := $(CURDIR)/.cache/bin/weed

.PHONY: all build test lint demo demo-fail weed staticcheck kube-apiserver etcd helm promtool deps bench soak fuzz fmt vet clean

all: build

build:
	$(GO) build ./...

## weed: build SeaweedFS (the local STS + S3) once, at the pinned version.
weed:
	@scripts/install-tool.sh weed tools/seaweedfs github.com/seaweedfs/seaweedfs/weed

## staticcheck: the linter of the gate, at the version pinned in tools/lint.
staticcheck:
	@scripts/install-tool.sh staticcheck tools/lint honnef.co/go/tools/cmd/staticcheck

## kube-apiserver: a real Kubernetes API server for the webhook and issuer tests, built once at
## the version pinned in tools/k8s (10-15 min cold on 2 cores, then cached like weed).
kube-apiserver:
	@scripts/install-tool.sh kube-apiserver tools/k8s k8s.io/kubernetes/cmd/kube-apiserver

## helm: Helm for the chart tests (lint, template), at the version pinned in tools/helm.
helm:
	@scripts/install-tool.sh helm tools/helm helm.sh/helm/v4/cmd/helm

## promtool: Prometheus's rule checker for the chart's alert tests, pinned in tools/helm.
promtool:
	@scripts/install-tool.sh promtool tools/helm github.com/prometheus/prometheus/cmd/promtool

## etcd: the API server's store, Debian's etcd-server.
etcd:
	@scripts/install-etcd.sh

## deps: everything the tests need that Go does not fetch by itself.
deps: weed staticcheck kube-apiserver etcd helm promtool
	@scripts/install-test-deps.sh

## test: the gate: vet and staticcheck, then every test with the race detector, never from the
## test cache. Fuzz targets replay their corpora (testdata/fuzz) as plain tests; random fuzzing
## is `make fuzz`, so a landing never depends on luck.
test: deps lint
	$(GOTEST) -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## lint: go vet and staticcheck over the module.
lint: staticcheck
	$(GO) vet ./...
	.cache/bin/staticcheck ./...

## demo: the whole flow on real parts: issuer, projected token, SeaweedFS, sidecar, uploader.
demo: weed
	$(GO) run ./cmd/demo

## demo-fail: the four classic trust-setup mistakes, each failing with its diagnosis.
demo-fail: weed
	$(GO) run ./cmd/demo -fail

## bench: benchmarks and the markdown report under docs/bench/.
bench: deps
	$(GO) run ./cmd/bench

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
