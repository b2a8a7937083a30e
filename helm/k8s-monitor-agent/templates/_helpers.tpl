{{/*
Expand the name of the chart.
*/}}
{{- define "k8s-monitor-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name, truncated at 63 characters (the DNS label limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "k8s-monitor-agent.fullname" -}}
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
{{- define "k8s-monitor-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "k8s-monitor-agent.labels" -}}
helm.sh/chart: {{ include "k8s-monitor-agent.chart" . }}
{{ include "k8s-monitor-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-monitor
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "k8s-monitor-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8s-monitor-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount (always created by this chart).
*/}}
{{- define "k8s-monitor-agent.serviceAccountName" -}}
{{- default (include "k8s-monitor-agent.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "k8s-monitor-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The agent's own default key Secret name (agent/config.py DEFAULT_KEY_SECRET).
*/}}
{{- define "k8s-monitor-agent.defaultKeySecretName" -}}
k8s-monitor-agent-key
{{- end }}

{{/*
Name of the Secret in which the agent keeps the key it generated (one agent per cluster).
*/}}
{{- define "k8s-monitor-agent.keySecretName" -}}
{{- default (include "k8s-monitor-agent.defaultKeySecretName" .) .Values.key.secretName }}
{{- end }}

{{/*
Whether the agent manages its own key through the Secrets API (no pre-created key mounted).
*/}}
{{- define "k8s-monitor-agent.managesKeySecret" -}}
{{- if not .Values.key.existingSecret }}true{{ end }}
{{- end }}

{{/*
Where a pre-created key is mounted, and the file the agent reads.
*/}}
{{- define "k8s-monitor-agent.keyDir" -}}
/var/run/k8s-monitor/key
{{- end }}

{{/*
The validated server URL (required).
*/}}
{{- define "k8s-monitor-agent.serverUrl" -}}
{{- $url := required "serverUrl is required: the k8s-monitor server's base URL, e.g. https://k8s-monitor.example.org" .Values.serverUrl }}
{{- if not (regexMatch "^https?://[^/]+" $url) }}
{{- fail (printf "serverUrl must start with http:// or https://, got %q" $url) }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
The monitor server's port: networkPolicy.server.port, else the URL's port, else 443/80.
*/}}
{{- define "k8s-monitor-agent.serverPort" -}}
{{- $url := urlParse (include "k8s-monitor-agent.serverUrl" .) }}
{{- $hostParts := splitList ":" $url.host }}
{{- if .Values.networkPolicy.server.port }}
{{- .Values.networkPolicy.server.port }}
{{- else if gt (len $hostParts) 1 }}
{{- last $hostParts }}
{{- else if eq $url.scheme "https" }}443
{{- else }}80
{{- end }}
{{- end }}

{{/*
Comma-separated `plural.group` names of the collected resource types, for the agent.
*/}}
{{- define "k8s-monitor-agent.includeTypes" -}}
{{- $names := list }}
{{- range (include "k8s-monitor-agent.resources" . | fromJsonArray) }}
{{- $group := .apiGroup }}
{{- range .resources }}
{{- if $group }}
{{- $names = append $names (printf "%s.%s" . $group) }}
{{- else }}
{{- $names = append $names . }}
{{- end }}
{{- end }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/*
NetworkPolicy egress rule for DNS.
*/}}
{{- define "k8s-monitor-agent.egress.dns" -}}
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

{{/*
NetworkPolicy egress rule for the monitor server.
*/}}
{{- define "k8s-monitor-agent.egress.server" -}}
- ports:
    - port: {{ include "k8s-monitor-agent.serverPort" . }}
      protocol: TCP
  {{- with .Values.networkPolicy.server.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
Every collected resource group: collect.resources, then collect.extraResources (JSON list).
*/}}
{{- define "k8s-monitor-agent.resources" -}}
{{- concat .Values.collect.resources (.Values.collect.extraResources | default list) | toJson }}
{{- end }}

{{/*
The proxy's port, from proxy.httpsProxy (default 80 for http, 443 for https).
*/}}
{{- define "k8s-monitor-agent.proxyPort" -}}
{{- $url := urlParse .Values.proxy.httpsProxy }}
{{- $hostParts := splitList ":" $url.host }}
{{- if gt (len $hostParts) 1 }}
{{- last $hostParts }}
{{- else if eq $url.scheme "https" }}443
{{- else }}80
{{- end }}
{{- end }}

{{/*
Where the CA bundle is mounted.
*/}}
{{- define "k8s-monitor-agent.caDir" -}}
/etc/k8s-monitor/ca
{{- end }}

{{/*
NetworkPolicy egress rule for the proxy (none without proxy.httpsProxy).
*/}}
{{- define "k8s-monitor-agent.egress.proxy" -}}
{{- if .Values.proxy.httpsProxy }}
- ports:
    - port: {{ include "k8s-monitor-agent.proxyPort" . }}
      protocol: TCP
  {{- with .Values.networkPolicy.proxy.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
