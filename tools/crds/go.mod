// Module crds pins the versions of the CustomResourceDefinitions the chart's objects are checked
// against on a real API server: cert-manager's (Certificate, Issuer) and the prometheus-operator's
// (PrometheusRule, PodMonitor, ServiceMonitor). Both modules ship their CRDs as YAML in their
// module zips; the chart tests read them from the module cache (`go mod download`), no copy is
// kept here.
module github.com/credsidecar/credsidecar/tools/crds

go 1.26.6

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
