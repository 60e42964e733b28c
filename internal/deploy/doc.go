// Package deploy holds no code: it is the home of the tests that keep the container build
// honest without a Docker engine. They parse the Dockerfile with BuildKit's own parser, check
// the properties the release depends on (cross-compiling builder pinned by digest, static
// stripped binaries stamped with the version, distroless nonroot runtime, OCI labels), and run
// the Dockerfile's own go build lines against the build context .dockerignore lets through.
package deploy
