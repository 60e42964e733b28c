# One image, three binaries: /sidecar (the entrypoint: `serve`), /uploader (the sample
# workload, run with command: [/uploader]) and /webhook (the admission webhook the Helm chart
# runs with command: [/webhook]). Build for several platforms with
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 .
#
# Base images are pinned by tag and digest. The digests are the multi-platform index digests
# recorded in public build files in September 2026; they could not be pulled from this
# repository's build machine, so verify and refresh them (Renovate's docker manager, or
# `crane digest golang:1.26.8-bookworm` / `crane digest gcr.io/distroless/static-debian12:nonroot`)
# when bumping Go or before a release. There is no `# syntax=` line on purpose: it would pull
# an unpinned frontend image; BuildKit's built-in frontend handles everything used here.

# The builder runs on the build machine's own platform and cross-compiles: no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:9fdc884aacc3bec89b20ffc69f4bb369c78210e3e4f600387b5128b12c199f81 AS build
ARG TARGETOS TARGETARCH VERSION=dev
WORKDIR /src
# No separate `go mod download`: it would also fetch the test-only modules; go build fetches
# what the binaries import, into the cache mount.
COPY go.mod go.sum ./
COPY cmd/ cmd/
COPY internal/ internal/
# Static, stripped, reproducible (-trimpath, no VCS stamp), version stamped into main.version.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/sidecar ./cmd/sidecar && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/uploader ./cmd/uploader && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/webhook ./cmd/webhook

# No shell, no package manager; CA certificates and /etc/passwd for nonroot only.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
ARG VERSION=dev
LABEL org.opencontainers.image.title="credsidecar" \
      org.opencontainers.image.description="AWS credentials for pods on non-EKS Kubernetes from projected service-account tokens" \
      org.opencontainers.image.source="https://github.com/credsidecar/credsidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/sidecar /sidecar
COPY --from=build /out/uploader /uploader
COPY --from=build /out/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/sidecar"]
