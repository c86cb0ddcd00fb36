{{/* Command line of `opensandbox manager` as a YAML list (toYaml quotes what needs it). */}}
{{- define "osb.managerArgs" -}}
{{- $cm := .Values.controllerManager -}}
{{- $le := $cm.leaderElection -}}
{{- $args := list "manager" (printf "--leader-elect=%t" $cm.leaderElect) -}}
{{- if $cm.leaderElect -}}
{{- $args = concat $args (list
    (printf "--leader-election-id=%s" $le.id)
    (printf "--leader-election-namespace=%s" (include "osb.leaseNamespace" .))
    (printf "--lease-duration=%s" $le.leaseDuration)
    (printf "--renew-deadline=%s" $le.renewDeadline)
    (printf "--retry-period=%s" $le.retryPeriod)) -}}
{{- end -}}
{{- with $cm.watchNamespace -}}
{{- $args = append $args (printf "--namespace=%s" .) -}}
{{- end -}}
{{- $metrics := ternary (printf "0.0.0.0:%d" (int .Values.metrics.port)) "0" .Values.metrics.enabled -}}
{{- $args = concat $args (list
    (printf "--kube-client-qps=%v" $cm.kubeClient.qps)
    (printf "--kube-client-burst=%v" $cm.kubeClient.burst)
    (printf "--health-probe-bind-address=0.0.0.0:%d" (int .Values.healthProbePort))
    (printf "--metrics-bind-address=%s" $metrics)
    (printf "--api-bind-address=%s" (include "osb.apiBindAddress" .))) -}}
{{- if and .Values.metrics.enabled .Values.metrics.secure -}}
{{- $args = concat $args (list "--metrics-secure=true" "--metrics-cert-path=/etc/opensandbox-metrics-certs") -}}
{{- end -}}
{{- if .Values.server.enabled -}}
{{- $args = append $args "--config=/etc/opensandbox/config.toml" -}}
{{- end -}}
{{- $args = concat $args (list
    (printf "--executor-image=%s" (include "osb.executorImage" .))
    (printf "--task-executor-image=%s" (include "osb.taskExecutorImage" .))
    (printf "--log-level=%s" $cm.logLevel)
    (printf "--log-format=%s" $cm.logFormat)) -}}
{{- $snap := $cm.snapshot -}}
{{- range $flag, $value := dict
    "snapshot-registry" $snap.registry
    "snapshot-push-secret" $snap.pushSecret
    "resume-pull-secret" $snap.resumePullSecret
    "image-committer-image" $snap.imageCommitterImage
    "commit-job-timeout" $snap.commitJobTimeout
    "containerd-socket-path" $snap.containerdSocketPath -}}
{{- if $value -}}
{{- $args = append $args (printf "--%s=%s" $flag $value) -}}
{{- end -}}
{{- end -}}
{{- if $snap.registryInsecure -}}
{{- $args = append $args "--snapshot-registry-insecure=true" -}}
{{- end -}}
{{- range $cm.extraArgs -}}
{{- $args = append $args (toString .) -}}
{{- end -}}
{{- toYaml $args -}}
{{- end }}
