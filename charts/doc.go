// Package charts holds no code: its tests lint and render the Helm chart in charts/credsidecar
// with the pinned helm binary (`make helm`) and compare the output with golden files.
package charts
