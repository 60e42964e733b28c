package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MutatePath is where the API server sends AdmissionReviews.
const MutatePath = "/mutate"

// maxReviewBytes is the largest AdmissionReview read: the API server's own request limit (3 MiB)
// holds the pod twice over, so a larger body is not from the API server.
const maxReviewBytes = 7 << 20

// ServiceAccounts finds a pod's ServiceAccount. Implementations look in an informer's cache
// first and ask the API server when it is not there (a ServiceAccount created a moment before
// its pod), so the answer is never a stale "missing".
type ServiceAccounts interface {
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
}

// ErrNotFound is what ServiceAccounts return for a ServiceAccount the API server does not have.
var ErrNotFound = errors.New("not found")

// Results of an admission, the label values of credsidecar_webhook_admissions_total.
const (
	ResultMutated = "mutated"
	ResultSkipped = "skipped"
	ResultRefused = "refused"
	ResultError   = "error"
)

// Handler answers AdmissionReviews for pods.
type Handler struct {
	sas      ServiceAccounts
	defaults Defaults
	log      *slog.Logger
	total    *prometheus.CounterVec
	latency  prometheus.Histogram
}

// NewHandler returns the /mutate handler, its metrics registered on reg.
func NewHandler(sas ServiceAccounts, d Defaults, log *slog.Logger, reg prometheus.Registerer) *Handler {
	h := &Handler{
		sas: sas, defaults: d, log: log,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credsidecar_webhook_admissions_total",
			Help: "Pod admissions by result: mutated, skipped (not labelled, or already injected), refused (the " +
				"ServiceAccount or pod annotations are unusable) or error (a bad review or an API server failure).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credsidecar_webhook_admission_duration_seconds",
			Help:    "Time to answer one AdmissionReview, ServiceAccount lookup included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	for _, r := range []string{ResultMutated, ResultSkipped, ResultRefused, ResultError} {
		h.total.WithLabelValues(r)
	}
	reg.MustRegister(h.total, h.latency)
	return h
}

// ServeHTTP decodes one AdmissionReview and answers it. Only a body that is not a review at all
// gets an HTTP error; every decision, refusals included, is a 200 carrying the AdmissionResponse.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	var review admissionv1.AdmissionReview
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err == nil && len(body) > maxReviewBytes {
		err = fmt.Errorf("review larger than %d bytes", maxReviewBytes)
	}
	if err == nil {
		err = json.Unmarshal(body, &review)
	}
	if err == nil && review.Request == nil {
		err = errors.New("review has no request")
	}
	if err != nil {
		h.total.WithLabelValues(ResultError).Inc()
		h.log.Warn("bad admission review", "error", err)
		http.Error(w, "bad admission review: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, result := h.review(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	b, err := json.Marshal(out)
	if err != nil {
		h.total.WithLabelValues(ResultError).Inc()
		http.Error(w, "encode admission response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	h.total.WithLabelValues(result).Inc()
	h.latency.Observe(time.Since(start).Seconds())
}

// review decides one request.
func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create {
		return allow, ResultSkipped
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, "credsidecar: decode pod: "+err.Error()), ResultError
	}
	if pod.Labels[LabelInject] != "true" || Injected(&pod) {
		return allow, ResultSkipped
	}
	ns := pod.Namespace
	if ns == "" {
		ns = req.Namespace
	}
	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	podName := pod.Name
	if podName == "" {
		podName = pod.GenerateName + "<generated>"
	}
	sa, err := h.sas.ServiceAccount(ctx, ns, saName)
	switch {
	case errors.Is(err, ErrNotFound):
		return deny(http.StatusForbidden, fmt.Sprintf("credsidecar: pod %s/%s is labelled %s=true but its serviceaccount "+
			"%s/%s does not exist", ns, podName, LabelInject, ns, saName)), ResultRefused
	case err != nil:
		h.log.Error("look up serviceaccount", "namespace", ns, "serviceaccount", saName, "error", err)
		return deny(http.StatusInternalServerError, fmt.Sprintf("credsidecar: look up serviceaccount %s/%s: %v", ns, saName, err)),
			ResultError
	}
	s, err := SettingsFor(sa, h.defaults)
	if err != nil {
		return deny(http.StatusForbidden, fmt.Sprintf("credsidecar: pod %s/%s: %v", ns, podName, err)), ResultRefused
	}
	orig := pod.DeepCopy()
	warnings, err := Inject(&pod, s, h.defaults)
	if err != nil {
		return deny(http.StatusForbidden, fmt.Sprintf("credsidecar: pod %s/%s: %v", ns, podName, err)), ResultRefused
	}
	patch, err := Patch(orig, &pod)
	if err != nil {
		return deny(http.StatusInternalServerError, "credsidecar: "+err.Error()), ResultError
	}
	pt := admissionv1.PatchTypeJSONPatch
	h.log.Debug("pod mutated", "namespace", ns, "pod", podName, "serviceaccount", saName, "warnings", len(warnings))
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt, Warnings: warnings}, ResultMutated
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Message: msg, Reason: metav1.StatusReasonForbidden,
	}}
}
