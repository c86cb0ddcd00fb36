{{/* Chart name, overridable. */}}
{{- define "osb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: <release>-<chart>, or the release alone when it already
contains the chart name. */}}
{{- define "osb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "osb.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<suffix>, kept within the 63 characters of a DNS label. */}}
{{- define "osb.suffixed" -}}
{{- printf "%s-%s" (include "osb.fullname" .root) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "osb.managerName" -}}
{{- include "osb.suffixed" (dict "root" . "suffix" "controller-manager") }}
{{- end }}

{{- define "osb.serverName" -}}
{{- include "osb.suffixed" (dict "root" . "suffix" "server") }}
{{- end }}

{{- define "osb.metricsServiceName" -}}
{{- include "osb.suffixed" (dict "root" . "suffix" "metrics") }}
{{- end }}

{{- define "osb.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* Namespace of the leader-election Lease. */}}
{{- define "osb.leaseNamespace" -}}
{{- default (include "osb.namespace" .) .Values.controllerManager.leaderElection.namespace }}
{{- end }}

{{/* Namespace the SDK API creates sandboxes in. */}}
{{- define "osb.sandboxNamespace" -}}
{{- $k := .Values.server.config.kubernetes }}
{{- coalesce $k.namespace .Values.controllerManager.watchNamespace (include "osb.namespace" .) }}
{{- end }}

{{- define "osb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "osb.labels" -}}
helm.sh/chart: {{ include "osb.chart" . }}
app.kubernetes.io/name: {{ include "osb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: opensandbox
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the manager pods (stable across upgrades: never add to them). */}}
{{- define "osb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "osb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller-manager
{{- end }}

{{/* Labels of an object belonging to a component: osb.labels plus the component. */}}
{{- define "osb.componentLabels" -}}
{{ include "osb.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "osb.serviceAccountName" -}}
{{- if .Values.rbac.serviceAccount.create }}
{{- default (include "osb.managerName" .) .Values.rbac.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.rbac.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag with the tag defaulting to the chart's appVersion. */}}
{{- define "osb.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion | toString) }}
{{- end }}

{{- define "osb.managerImage" -}}
{{- include "osb.image" (dict "image" .Values.controllerManager.image "root" .) }}
{{- end }}

{{- define "osb.executorImage" -}}
{{- include "osb.image" (dict "image" .Values.controllerManager.executorImage "root" .) }}
{{- end }}

{{- define "osb.taskExecutorImage" -}}
{{- include "osb.image" (dict "image" .Values.taskExecutor.image "root" .) }}
{{- end }}

{{/* The image server.image resolves to when set: repository[:tag], tag defaulting like the
manager's. Empty when server.image.repository is empty. */}}
{{- define "osb.serverImage" -}}
{{- with .Values.server.image.repository }}
{{- include "osb.image" (dict "image" $.Values.server.image "root" $) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when server.image names something other than the manager image. */}}
{{- define "osb.serverImageIgnored" -}}
{{- $img := include "osb.serverImage" . }}
{{- if and $img (ne $img (include "osb.managerImage" .)) }}true{{ end }}
{{- end }}

{{- define "osb.apiBindAddress" -}}
{{- if .Values.server.enabled }}
{{- $s := .Values.server.config.server }}
{{- $host := ternary (printf "[%s]" $s.host) $s.host (contains ":" $s.host) }}
{{- printf "%s:%d" $host (int $s.port) }}
{{- else }}0{{ end }}
{{- end }}

{{/* Secret holding the SDK API key, and the key inside it. */}}
{{- define "osb.apiKeySecretName" -}}
{{- default (include "osb.serverName" .) .Values.server.config.server.existingSecret }}
{{- end }}

{{- define "osb.apiKeySecretKey" -}}
{{- if .Values.server.config.server.existingSecret }}
{{- .Values.server.config.server.existingSecretKey | default "api-key" }}
{{- else }}api-key{{ end }}
{{- end }}

{{/* The API key the rendered Secret holds: the value, else the key already stored in the
cluster (so upgrades keep it), else a new random one. */}}
{{- define "osb.apiKey" -}}
{{- $given := .Values.server.config.server.apiKey }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- $old := lookup "v1" "Secret" (include "osb.namespace" .) (include "osb.serverName" .) }}
{{- if and $old $old.data (index $old.data "api-key") }}
{{- index $old.data "api-key" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether a PodDisruptionBudget is rendered: forced by podDisruptionBudget.enabled, else
automatic with more than one replica. */}}
{{- define "osb.pdbEnabled" -}}
{{- $forced := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "bool" $forced }}
{{- if $forced }}true{{ end }}
{{- else if gt (int .Values.controllerManager.replicas) 1 }}true{{ end }}
{{- end }}

{{/* Fails the render on value combinations that cannot work. */}}
{{- define "osb.validate" -}}
{{- $cm := .Values.controllerManager }}
{{- if and (gt (int $cm.replicas) 1) (not $cm.leaderElect) }}
{{- fail "controllerManager.replicas > 1 needs controllerManager.leaderElect=true: two leaders would allocate the same pods twice" }}
{{- end }}
{{- if and .Values.server.enabled (ne .Values.server.config.runtime.type "kubernetes") }}
{{- fail "server.config.runtime.type must be \"kubernetes\": the manager runs sandboxes as Kubernetes workloads" }}
{{- end }}
{{- $svc := .Values.server.service }}
{{- if and $svc.nodePort (not (has $svc.type (list "NodePort" "LoadBalancer"))) }}
{{- fail "server.service.nodePort needs server.service.type NodePort or LoadBalancer" }}
{{- end }}
{{- if and .Values.server.ingress.enabled (not .Values.server.enabled) }}
{{- fail "server.ingress.enabled needs server.enabled" }}
{{- end }}
{{- end }}
