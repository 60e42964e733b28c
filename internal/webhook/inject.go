package webhook

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The pod layout the webhook writes; manifests/job.yaml is the same by hand.
const (
	SidecarName     = "credsidecar"
	TokenVolume     = "credsidecar-token"
	TokenDir        = "/var/run/secrets/credsidecar/serviceaccount"
	AuthVolume      = "credsidecar-auth"
	AuthDir         = "/var/run/credsidecar"
	AuthTokenFile   = AuthDir + "/auth-token"
	CredentialsPort = 9910
	IMDSPort        = 9911
	MetricsPort     = 9912
	// SidecarUID is the sidecar's own uid: with shareProcessNamespace an app of the same uid could
	// read its token through /proc/<pid>/root. SharedGID is the apps' group (the image's nonroot),
	// through which they read the 0640 auth token.
	SidecarUID = 65533
	SharedGID  = 65532
)

// credentialEnv are the variables that the SDKs read before the container-credentials endpoint:
// an app container carrying one would not use the sidecar.
var credentialEnv = []string{"AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"}

// Injected reports whether pod already has the sidecar, so a re-invocation changes nothing.
func Injected(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == SidecarName })
}

// Inject adds the sidecar to pod as configured by s and d and the pod's own annotations: the
// sidecar as the first init container (a native sidecar whose startup probe holds back the app
// containers until credentials exist), the projected token volume (one audience, mounted into the
// sidecar only), the auth-token emptyDir, and in each selected app container the
// container-credentials variables and a read-only mount. It returns admission warnings; an
// unusable pod annotation is an error naming it.
func Inject(pod *corev1.Pod, s Settings, d Defaults) (warnings []string, err error) {
	res, err := sidecarResources(pod.Annotations, d)
	if err != nil {
		return nil, err
	}
	imds, err := boolAnnotation(pod.Annotations, AnnotationIMDS)
	if err != nil {
		return nil, err
	}
	if imds && s.RoleARN == "" {
		return nil, fmt.Errorf("pod annotation %s=true: instance metadata serves the unnamed role only (an instance has "+
			"one role), and the serviceaccount names none (%s); use the named roles' endpoints", AnnotationIMDS, AnnotationRoleARN)
	}
	apps, err := selectContainers(pod)
	if err != nil {
		return nil, err
	}
	roleOf, err := containerRoles(pod, s, apps)
	if err != nil {
		return nil, err
	}
	for _, i := range apps {
		c := &pod.Spec.Containers[i]
		role, named := roleOf[c.Name]
		if !named && s.RoleARN == "" {
			continue // no unnamed role: a container not pointed at a named one gets no credentials
		}
		for _, name := range credentialEnv {
			if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }) {
				warnings = append(warnings, fmt.Sprintf("container %s sets %s: the AWS SDK reads it before the "+
					"credsidecar endpoint, so this container will not use the sidecar's credentials", c.Name, name))
			}
		}
		addAppEnv(c, s, imds, role)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: AuthVolume, MountPath: AuthDir, ReadOnly: true})
	}
	pod.Spec.InitContainers = append([]corev1.Container{sidecar(s, d, res, imds)}, pod.Spec.InitContainers...)
	pod.Spec.Volumes = append(pod.Spec.Volumes, volumes(s)...)
	if sc := pod.Spec.SecurityContext; sc == nil || sc.FSGroup == nil {
		if pod.Spec.SecurityContext == nil {
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		gid, policy := int64(SharedGID), corev1.FSGroupChangeOnRootMismatch
		pod.Spec.SecurityContext.FSGroup = &gid
		pod.Spec.SecurityContext.FSGroupChangePolicy = &policy
		warnings = append(warnings, fmt.Sprintf("pod had no fsGroup: set to %d so that app containers of any group "+
			"can read the sidecar's 0640 auth token", SharedGID))
	}
	return warnings, nil
}

// selectContainers returns the indexes of the app containers to configure: all of them, or those
// named by include-containers, less those named by skip-containers. A name that matches no
// container is an error, so a typo does not silently leave a container without credentials.
func selectContainers(pod *corev1.Pod) ([]int, error) {
	names := make([]string, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		names[i] = c.Name
	}
	parse := func(key string) ([]string, error) {
		v, ok := pod.Annotations[key]
		if !ok {
			return nil, nil
		}
		var out []string
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if !slices.Contains(names, n) {
				return nil, fmt.Errorf("pod annotation %s=%q: no container %q in the pod (containers: %s)", key, v, n,
					strings.Join(names, ", "))
			}
			out = append(out, n)
		}
		return out, nil
	}
	include, err := parse(AnnotationIncludeContainers)
	if err != nil {
		return nil, err
	}
	skip, err := parse(AnnotationSkipContainers)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i, n := range names {
		if (include == nil || slices.Contains(include, n)) && !slices.Contains(skip, n) {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// containerRoles reads the pod's container-roles annotation: container name to role name, each
// container one the sidecar configures, each role one the serviceaccount names.
func containerRoles(pod *corev1.Pod, s Settings, apps []int) (map[string]string, error) {
	v, ok := pod.Annotations[AnnotationContainerRoles]
	if !ok {
		return nil, nil
	}
	selected := make([]string, len(apps))
	for j, i := range apps {
		selected[j] = pod.Spec.Containers[i].Name
	}
	roles := make([]string, len(s.Roles))
	for i, r := range s.Roles {
		roles[i] = r.Name
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("pod annotation %s=%q: %s", AnnotationContainerRoles, v, fmt.Sprintf(format, a...))
	}
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		container, role, ok := strings.Cut(strings.TrimSpace(pair), "=")
		switch {
		case !ok || container == "" || role == "":
			return nil, bad("%q: want CONTAINER=ROLE, such as app=reader", pair)
		case !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }):
			names := make([]string, len(pod.Spec.Containers))
			for i, c := range pod.Spec.Containers {
				names[i] = c.Name
			}
			return nil, bad("no container %q in the pod (containers: %s)", container, strings.Join(names, ", "))
		case !slices.Contains(selected, container):
			return nil, bad("container %q is left out by %s or %s, so it gets no credentials to point at role %q",
				container, AnnotationSkipContainers, AnnotationIncludeContainers, role)
		case !slices.Contains(roles, role):
			has := "names no roles (" + AnnotationRoles + ")"
			if len(roles) > 0 {
				has = "names the roles " + strings.Join(roles, ", ")
			}
			return nil, bad("container %q asks for role %q, but serviceaccount %s/%s %s", container, role,
				pod.Namespace, pod.Spec.ServiceAccountName, has)
		case out[container] != "":
			return nil, bad("container %q is named twice", container)
		}
		out[container] = role
	}
	return out, nil
}

// addAppEnv sets the container-credentials pair (pointed at role, "" for the unnamed one), the
// IMDS endpoint, and a region the SDK needs for S3, unless the container sets them itself.
func addAppEnv(c *corev1.Container, s Settings, imds bool, role string) {
	set := func(name, value string) {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }) {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	uri := "http://127.0.0.1:" + strconv.Itoa(CredentialsPort) + "/v1/credentials"
	if role != "" {
		uri += "/" + role
	}
	set("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
	set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", AuthTokenFile)
	if imds && role == "" {
		// The trailing slash: old botocore joins endpoint and path without one.
		set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:"+strconv.Itoa(IMDSPort)+"/")
	}
	if s.Region != "" && !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "AWS_REGION" || e.Name == "AWS_DEFAULT_REGION"
	}) {
		set("AWS_REGION", s.Region)
	}
}

func sidecar(s Settings, d Defaults, res corev1.ResourceRequirements, imds bool) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	args := []string{"serve", "--listen=127.0.0.1:" + strconv.Itoa(CredentialsPort), "--auth-token-file=" + AuthTokenFile,
		"--metrics-listen=:" + strconv.Itoa(MetricsPort)}
	if imds {
		args = append(args, "--imds-listen=127.0.0.1:"+strconv.Itoa(IMDSPort))
	}
	var env []corev1.EnvVar
	if s.RoleARN != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: s.RoleARN})
	}
	if len(s.Roles) > 0 {
		pairs := make([]string, len(s.Roles))
		for i, r := range s.Roles {
			pairs[i] = r.Name + "=" + r.ARN
		}
		env = append(env, corev1.EnvVar{Name: "CREDSIDECAR_ROLES", Value: strings.Join(pairs, ",")})
	}
	env = append(env, corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: TokenDir + "/token"})
	if s.Region != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_REGION", Value: s.Region})
	}
	if s.STSEndpoint != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_STS", Value: s.STSEndpoint})
	}
	if s.SessionDuration != 0 {
		env = append(env, corev1.EnvVar{Name: "CREDSIDECAR_DURATION", Value: strconv.FormatInt(int64(s.SessionDuration/time.Second), 10)})
	}
	// POD_IP and HOST_IP, equal, reveal hostNetwork: the sidecar then refuses IMDS and warns.
	for _, f := range []struct{ name, path string }{{"POD_NAME", "metadata.name"}, {"POD_NAMESPACE", "metadata.namespace"},
		{"POD_IP", "status.podIP"}, {"HOST_IP", "status.hostIP"}} {
		env = append(env, corev1.EnvVar{Name: f.name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: f.path}}})
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("metrics")}},
			PeriodSeconds:    period,
			FailureThreshold: failures,
		}
	}
	no, yes := false, true
	uid, gid := int64(SidecarUID), int64(SharedGID)
	return corev1.Container{
		Name:          SidecarName,
		Image:         d.Image,
		RestartPolicy: &always,
		Args:          args,
		Env:           env,
		Ports:         []corev1.ContainerPort{{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP}},
		// The app containers start only once this passes: credentials are ready to serve.
		StartupProbe:   probe("/readyz", 1, 120),
		ReadinessProbe: probe("/readyz", 10, 3),
		LivenessProbe:  probe("/healthz", 20, 3),
		Resources:      res,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &gid,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true},
			{Name: AuthVolume, MountPath: AuthDir},
		},
	}
}

func volumes(s Settings) []corev1.Volume {
	exp := int64(s.TokenExpiration / time.Second)
	size := resource.MustParse("1Mi")
	return []corev1.Volume{
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Path: "token", Audience: s.Audience, ExpirationSeconds: &exp,
			}}},
		}}},
		// Memory-backed, so the auth token never reaches a disk.
		{Name: AuthVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &size,
		}}},
	}
}

// sidecarResources reads the pod's sizing annotations over d.
func sidecarResources(ann map[string]string, d Defaults) (corev1.ResourceRequirements, error) {
	q := func(key string, def resource.Quantity) (resource.Quantity, error) {
		v, ok := ann[key]
		if !ok {
			return def, nil
		}
		got, err := resource.ParseQuantity(v)
		if err != nil || got.Sign() <= 0 {
			return resource.Quantity{}, fmt.Errorf("pod annotation %s=%q: not a positive quantity such as 10m or 32Mi", key, v)
		}
		return got, nil
	}
	cpu, err := q(AnnotationCPURequest, d.CPURequest)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	memReq, err := q(AnnotationMemoryRequest, d.MemoryRequest)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	memLim, err := q(AnnotationMemoryLimit, d.MemoryLimit)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	if memLim.Cmp(memReq) < 0 {
		return corev1.ResourceRequirements{}, fmt.Errorf("pod annotation %s=%s is below the memory request %s",
			AnnotationMemoryLimit, memLim.String(), memReq.String())
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memReq},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: memLim},
	}, nil
}

func boolAnnotation(ann map[string]string, key string) (bool, error) {
	switch v, ok := ann[key]; {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, fmt.Errorf("pod annotation %s=%q: must be true or false", key, v)
	}
}
