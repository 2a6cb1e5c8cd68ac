{{- define "mailwarden.labels" -}}
app.kubernetes.io/name: mailwarden-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
{{- define "mailwarden.selector" -}}
app.kubernetes.io/name: mailwarden-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
