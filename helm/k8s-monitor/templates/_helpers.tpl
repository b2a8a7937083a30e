{{/*
Expand the name of the chart.
*/}}
{{- define "k8s-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name, truncated at 63 characters (the DNS label limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "k8s-monitor.fullname" -}}
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

{{/*
Chart name and version, as used by the chart label.
*/}}
{{- define "k8s-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "k8s-monitor.labels" -}}
helm.sh/chart: {{ include "k8s-monitor.chart" . }}
{{ include "k8s-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-monitor
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "k8s-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8s-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component: pass (dict "root" $ "component" "web").
*/}}
{{- define "k8s-monitor.componentLabels" -}}
{{ include "k8s-monitor.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one component: pass (dict "root" $ "component" "web").
*/}}
{{- define "k8s-monitor.componentSelectorLabels" -}}
{{ include "k8s-monitor.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "k8s-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "k8s-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "k8s-monitor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the credentials; rendering fails with a clear message when it is not set.
*/}}
{{- define "k8s-monitor.secretName" -}}
{{- required "existingSecret is required: create a Secret with DATABASE_URL, REDIS_URL and SECRET_KEY and pass its name (see docs/deploy.md)" .Values.existingSecret }}
{{- end }}

{{/*
Name of the rules-configuration ConfigMap.
*/}}
{{- define "k8s-monitor.rulesConfigName" -}}
{{- printf "%s-rules" (include "k8s-monitor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where the rules configuration is mounted inside the containers.
*/}}
{{- define "k8s-monitor.rulesConfigDir" -}}
/etc/k8s-monitor/rules
{{- end }}

{{/*
Environment of a server container: settings plus credentials from existingSecret.
Pass (dict "root" $ "notifications" true) for the processes that talk to Slack and webhooks
(web and worker); the others never receive those credentials.
*/}}
{{- define "k8s-monitor.env" -}}
{{- $notifications := .notifications }}
{{- with .root }}
{{- $secret := include "k8s-monitor.secretName" . }}
- name: K8SMON_ENV
  value: production
- name: K8SMON_INSTANCE_PATH
  value: /var/lib/k8s-monitor
- name: K8SMON_RETENTION_DAYS
  value: {{ .Values.config.retentionDays | quote }}
- name: K8SMON_SCAN_INTERVAL_HOURS
  value: {{ .Values.config.scanIntervalHours | quote }}
- name: K8SMON_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: K8SMON_RULES_CONFIG
  value: {{ printf "%s/config.yaml" (include "k8s-monitor.rulesConfigDir" .) | quote }}
- name: K8SMON_PUBLIC_URL
  value: {{ include "k8s-monitor.publicUrl" . | quote }}
{{- with .Values.config.slackAllowedUsers }}
- name: SLACK_ALLOWED_USERS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.webhookAllowedNetworks }}
- name: K8SMON_WEBHOOK_ALLOWED_NETWORKS
  value: {{ join "," . | quote }}
{{- end }}
{{- if .Values.security.allowPlainHttp }}
# security.allowPlainHttp: a plain-HTTP test install; generic webhooks may go unsigned.
- name: K8SMON_WEBHOOK_ALLOW_UNSIGNED
  value: "true"
{{- end }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.databaseUrl }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.redisUrl }}
- name: SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.secretKey }}
{{- if $notifications }}
- name: SLACK_SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.slackSigningSecret }}
      optional: true
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.slackBotToken }}
      optional: true
- name: K8SMON_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.webhookSecret }}
      optional: true
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Writable scratch volumes (the root filesystem is read-only).
*/}}
{{- define "k8s-monitor.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: instance
  emptyDir:
    sizeLimit: 512Mi
- name: rules-config
  configMap:
    name: {{ include "k8s-monitor.rulesConfigName" . }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "k8s-monitor.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: instance
  mountPath: /var/lib/k8s-monitor
- name: rules-config
  mountPath: {{ include "k8s-monitor.rulesConfigDir" . }}
  readOnly: true
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-spec fields shared by every server pod (service account, security, scheduling).
*/}}
{{- define "k8s-monitor.podCommon" -}}
serviceAccountName: {{ include "k8s-monitor.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod annotations: user annotations plus a checksum of the rules config, so pods restart when it
changes.
*/}}
{{- define "k8s-monitor.podAnnotations" -}}
checksum/rules-config: {{ include (print .Template.BasePath "/configmap-rules.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy egress rules every server component needs: DNS, PostgreSQL and Redis.
*/}}
{{- define "k8s-monitor.egress.dns" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "k8s-monitor.egress.database" -}}
- ports:
    - port: {{ .Values.networkPolicy.database.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.database.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "k8s-monitor.egress.redis" -}}
- ports:
    - port: {{ .Values.networkPolicy.redis.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.redis.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "k8s-monitor.egress.https" -}}
{{- if .Values.networkPolicy.https.enabled -}}
- ports:
    - port: {{ .Values.networkPolicy.https.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.https.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The public URL (required): https:// unless security.allowPlainHttp (the admin session cookie is
`Secure` exactly when it is https).
*/}}
{{- define "k8s-monitor.publicUrl" -}}
{{- $url := required "config.publicUrl is required: the https:// URL of the admin pages, e.g. https://k8s-monitor.example.org" .Values.config.publicUrl }}
{{- if not (regexMatch "^https?://[^/]+" $url) }}
{{- fail (printf "config.publicUrl must start with https://, got %q" $url) }}
{{- end }}
{{- if and (not (hasPrefix "https://" $url)) (not .Values.security.allowPlainHttp) }}
{{- fail (printf "config.publicUrl must be https:// so the session cookie is Secure (got %q); set security.allowPlainHttp=true only for a plain-HTTP test install" $url) }}
{{- end }}
{{- trimSuffix "/" $url }}
{{- end }}
