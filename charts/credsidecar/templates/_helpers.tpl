{{- define "credsidecar.fullname" -}}
{{- printf "%s-webhook" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credsidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "credsidecar.labels" -}}
{{ include "credsidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "credsidecar.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /*
credsidecar.tlsData: the generated CA, certificate and key (base64), computed once per render and
kept in a scratch key so the Secret, the caBundle and the checksum agree; an existing Secret is
reused so the CA stays stable across upgrades.
*/ -}}
{{- define "credsidecar.tlsData" -}}
{{- if not (hasKey .Values "tlsScratch") -}}
{{- $name := include "credsidecar.fullname" . -}}
{{- $dns := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-tls" $name) -}}
{{- if and $existing $existing.data (index $existing.data "ca.crt") -}}
{{- $_ := set .Values "tlsScratch" (dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key")) -}}
{{- else -}}
{{- $ca := genCA (printf "%s-ca" $name) 3650 -}}
{{- $cert := genSignedCert $dns nil (list $dns (printf "%s.%s" $name .Release.Namespace)) 3650 $ca -}}
{{- $_ := set .Values "tlsScratch" (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- toJson .Values.tlsScratch -}}
{{- end -}}
