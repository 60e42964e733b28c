//go:build !race

package modes

// raceEnabled builds the sidecar binary with -race too, so the build reuses the packages the
// test build compiled.
const raceEnabled = false
