{{/* The release's full name, at most 63 characters. */}}
{{- define "operon.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "operon.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "operon.labels" -}}
{{ include "operon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "operon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "operon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "operon.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* RBAC rules for a list of {apiGroup, resource}, with verbs. */}}
{{- define "operon.rules" -}}
{{- $verbs := .verbs -}}
{{- range .kinds }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ .resource | quote }}{{ if $.sub }}, {{ printf "%s/%s" .resource $.sub | quote }}{{ end }}]
  verbs: {{ toJson $verbs }}
{{- end }}
{{- end -}}
