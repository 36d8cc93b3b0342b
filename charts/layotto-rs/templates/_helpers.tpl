{{- define "layotto-rs.name" -}}layotto-rs-sidecar-injector{{- end -}}
{{- define "layotto-rs.labels" -}}
app.kubernetes.io/name: {{ include "layotto-rs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: layotto-rs
{{- end -}}
{{- define "layotto-rs.selector" -}}
app.kubernetes.io/name: {{ include "layotto-rs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
