{{/* Names and labels, as `helm create` makes them. */}}
{{- define "kasvu-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kasvu-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kasvu-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kasvu-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kasvu-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kasvu-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kasvu-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kasvu-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kasvu-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kasvu-gateway.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "kasvu-gateway.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/* The policy files the chart ships (policies/ links to the repository's). */}}
{{- define "kasvu-gateway.policyFiles" -}}
{{- range $path, $_ := .Files.Glob "policies/*.polar" }}
{{ base $path }}: |-
{{ $.Files.Get $path | indent 2 }}
{{- end }}
{{- end }}

{{/* The database URL, from the Secret: every container that talks to PostgreSQL. */}}
{{- define "kasvu-gateway.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
- name: DB_ROLE
  value: {{ .Values.database.role | quote }}
{{- end }}

{{/* A container's security context: nothing to write, nothing to escalate. */}}
{{- define "kasvu-gateway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kasvu-gateway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Labels of the hook and job pods. Not the gateway's selector labels: a running
migration, retention or test pod must never be an endpoint of the Service or
count towards the disruption budget. Call with (dict "root" $ "component" "migrate").
*/}}
{{- define "kasvu-gateway.componentLabels" -}}
app.kubernetes.io/name: {{ include "kasvu-gateway.name" .root }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name lookups: the cluster DNS, in whatever namespace it runs. */}}
{{- define "kasvu-gateway.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
