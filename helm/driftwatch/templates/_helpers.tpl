{{/* Names, labels and the pieces every Driftwatch pod shares. */}}

{{- define "driftwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "driftwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "driftwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "driftwatch.labels" -}}
helm.sh/chart: {{ include "driftwatch.chart" . }}
{{ include "driftwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftwatch
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "ingest") */}}
{{- define "driftwatch.componentLabels" -}}
{{ include "driftwatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "driftwatch.componentSelector" -}}
{{ include "driftwatch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "driftwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "driftwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "driftwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "driftwatch.secretName" -}}
{{- default (include "driftwatch.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The settings file: the `config` values, verbatim. */}}
{{- define "driftwatch.configYaml" -}}
{{- toYaml .Values.config }}
{{- end }}

{{/* Secret keys, only those that have a value. Fails early when prod would refuse to start. */}}
{{- define "driftwatch.secretData" -}}
{{- $s := .Values.secrets }}
database-url: {{ required "secrets.databaseUrl is required (or set secrets.existingSecret)" $s.databaseUrl | b64enc | quote }}
{{- if eq (toString .Values.config.environment) "prod" }}
{{- if lt (len (toString $s.apiToken)) 16 }}
{{- fail "secrets.apiToken of at least 16 characters is required when config.environment is prod" }}
{{- end }}
{{- end }}
{{- with $s.apiToken }}
api-token: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.alertChannels }}
alert-channels: {{ toJson . | b64enc | quote }}
{{- end }}
{{- with $s.grafanaToken }}
grafana-token: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.grafanaPostgresPassword }}
grafana-postgres-password: {{ . | b64enc | quote }}
{{- end }}
{{- with $s.kafkaSaslPassword }}
kafka-sasl-password: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Secret key -> settings environment variable. */}}
{{- define "driftwatch.secretEnvMap" -}}
database-url: DRIFTWATCH_DATABASE__URL
api-token: DRIFTWATCH_API__TOKEN
alert-channels: DRIFTWATCH_ALERTS__CHANNELS
grafana-token: DRIFTWATCH_GRAFANA__TOKEN
grafana-postgres-password: DRIFTWATCH_GRAFANA__POSTGRES_PASSWORD
kafka-sasl-password: DRIFTWATCH_KAFKA__SASL_PASSWORD
{{- end }}

{{/* Environment of every Driftwatch container: (dict "root" $ "secretName" NAME) */}}
{{- define "driftwatch.env" -}}
- name: DRIFTWATCH_CONFIG
  value: /etc/driftwatch/driftwatch.yaml
{{- range $key, $var := (include "driftwatch.secretEnvMap" .root | fromYaml) }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $.secretName }}
      key: {{ $key }}
      optional: {{ ne $key "database-url" }}
{{- end }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when settings or secrets change. */}}
{{- define "driftwatch.checksums" -}}
checksum/config: {{ include "driftwatch.configYaml" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "driftwatch.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Pod-level pieces shared by every workload. */}}
{{- define "driftwatch.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "driftwatch.volumes" -}}
- name: config
  configMap:
    name: {{ include "driftwatch.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- end }}

{{- define "driftwatch.volumeMounts" -}}
- name: config
  mountPath: /etc/driftwatch
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Startup, liveness and readiness probes on an HTTP port: (dict "port" P "path" P "probes" V) */}}
{{- define "driftwatch.probes" -}}
{{- range $kind := list "startupProbe" "livenessProbe" "readinessProbe" }}
{{ $kind }}:
  httpGet:
    path: {{ $.path }}
    port: {{ $.port }}
  {{- toYaml (index $.probes $kind) | nindent 2 }}
{{- end }}
{{- end }}

{{/* Spread a component's pods over zones and nodes: (dict "root" $ "component" C) */}}
{{- define "driftwatch.topologySpread" -}}
{{- with .root.Values.topologySpread }}
{{- if .enabled }}
topologySpreadConstraints:
  {{- range $key := .topologyKeys }}
  - maxSkew: {{ $.root.Values.topologySpread.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: {{ $.root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "driftwatch.componentSelector" $ | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
