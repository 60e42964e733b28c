package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
)

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch is the JSON patch that turns orig into mutated, for the fields Inject changes: each
// changed one is set whole with "add" (which replaces a member that exists), so the patch
// applies whatever the API server's defaulting has already filled in.
func Patch(orig, mutated *corev1.Pod) ([]byte, error) {
	var ops []patchOp
	add := func(path string, before, after any) {
		if !reflect.DeepEqual(before, after) {
			ops = append(ops, patchOp{Op: "add", Path: path, Value: after})
		}
	}
	add("/spec/initContainers", orig.Spec.InitContainers, mutated.Spec.InitContainers)
	add("/spec/containers", orig.Spec.Containers, mutated.Spec.Containers)
	add("/spec/volumes", orig.Spec.Volumes, mutated.Spec.Volumes)
	add("/spec/securityContext", orig.Spec.SecurityContext, mutated.Spec.SecurityContext)
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	return b, nil
}
