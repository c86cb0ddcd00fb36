{{/* config.toml of the SDK API. Strings go through toJson: a JSON string is a valid TOML basic
string. The API key is never written here; it arrives as env OPENSANDBOX_SERVER_API_KEY. */}}
{{- define "osb.configToml" -}}
{{- $c := .Values.server.config -}}
[server]
host = {{ $c.server.host | toJson }}
port = {{ int $c.server.port }}
log_level = {{ $c.server.logLevel | toJson }}

[runtime]
type = {{ $c.runtime.type | toJson }}
execd_image = {{ $c.runtime.execdImage | default (include "osb.executorImage" .) | toJson }}

[kubernetes]
namespace = {{ include "osb.sandboxNamespace" . | toJson }}
workload_provider = {{ $c.kubernetes.workloadProvider | toJson }}
{{- with $c.extraToml }}

{{ . }}
{{- end }}
{{- end }}
