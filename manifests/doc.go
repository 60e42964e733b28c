// Package manifests holds no code: it is the home of the tests that keep the Kubernetes
// manifests, the kustomize component and the IAM policy templates in this directory honest.
// They decode every object strictly into the Kubernetes API types, render the kustomizations
// in-process and compare them with golden files, and assert the properties the design depends
// on (native sidecar, single-audience projected token, app env limited to the
// container-credentials pair, restricted security context).
package manifests
