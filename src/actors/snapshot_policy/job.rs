//! The commit and unpause Jobs of a snapshot (upstream §8, "Commit Job spec").

use k8s_openapi::api::batch::v1::Job;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::SnapshotConfig;
use crate::crd::{SandboxSnapshot, SandboxSnapshotStatus, keys};

const CONTAINER: &str = "commit";
const SOCKET_MOUNT: &str = "/var/run/containerd/containerd.sock";
const CREDS_MOUNT: &str = "/var/run/opensandbox/registry";

pub fn commit_job_name(snapshot: &str) -> String {
    format!("{snapshot}-commit")
}

pub fn unpause_job_name(snapshot: &str) -> String {
    format!("{snapshot}-unpause")
}

fn owner(snapshot: &SandboxSnapshot) -> Value {
    json!({
        "apiVersion": SandboxSnapshot::api_version(&()),
        "kind": SandboxSnapshot::kind(&()),
        "name": snapshot.name_any(),
        "uid": snapshot.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

struct JobShape<'a> {
    name: String,
    namespace: &'a str,
    node: Option<&'a str>,
    args: Vec<String>,
    backoff_limit: i32,
    push_secret: Option<&'a str>,
}

fn job(snapshot: &SandboxSnapshot, shape: JobShape<'_>, config: &SnapshotConfig) -> Job {
    let mut env = vec![json!({"name": "CONTAINERD_SOCKET", "value": SOCKET_MOUNT})];
    if config.registry_insecure {
        env.push(json!({"name": "SNAPSHOT_REGISTRY_INSECURE", "value": "true"}));
    }
    let mut mounts = vec![json!({"name": "containerd-sock", "mountPath": SOCKET_MOUNT})];
    let mut volumes = vec![json!({
        "name": "containerd-sock",
        "hostPath": {"path": config.containerd_socket_path, "type": "Socket"},
    })];
    if let Some(secret) = shape.push_secret {
        mounts.push(json!({"name": "registry-creds", "mountPath": CREDS_MOUNT, "readOnly": true}));
        volumes.push(json!({
            "name": "registry-creds",
            "secret": {
                "secretName": secret,
                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
            },
        }));
    }
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": CONTAINER,
            "image": config.committer_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/usr/local/bin/image-committer"],
            "args": shape.args,
            "env": env,
            "volumeMounts": mounts,
            "securityContext": {
                "runAsUser": 0,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
        "volumes": volumes,
    });
    if let Some(node) = shape.node {
        pod_spec["nodeName"] = json!(node);
    }
    let labels = json!({
        keys::LABEL_SANDBOX_SNAPSHOT_NAME: snapshot.name_any(),
        keys::LABEL_PRIVILEGED_NODE_ACCESS: "true",
    });
    let manifest = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": shape.name,
            "namespace": shape.namespace,
            "labels": labels,
            "ownerReferences": [owner(snapshot)],
        },
        "spec": {
            "backoffLimit": shape.backoff_limit,
            "ttlSecondsAfterFinished": 300,
            "activeDeadlineSeconds": config.commit_job_timeout.as_secs().max(1),
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec,
            },
        },
    });
    // The manifest is built from typed values only, so it always fits the Job schema.
    serde_json::from_value(manifest).unwrap_or_default()
}

/// `<snapshot>-commit`: commits every container of the source pod and pushes the images.
pub fn commit_job(
    snapshot: &SandboxSnapshot,
    status: &SandboxSnapshotStatus,
    namespace: &str,
    config: &SnapshotConfig,
) -> Job {
    let pod = status.source_pod_name.clone().unwrap_or_default();
    let mut args = vec![pod, namespace.to_string()];
    args.extend(
        status
            .containers
            .iter()
            .map(|c| format!("{}:{}", c.container_name, c.image_uri)),
    );
    job(
        snapshot,
        JobShape {
            name: commit_job_name(&snapshot.name_any()),
            namespace,
            node: status.source_node_name.as_deref(),
            args,
            backoff_limit: 3,
            push_secret: config.push_secret.as_deref(),
        },
        config,
    )
}

/// `<snapshot>-unpause`: resumes the source containers after a failed commit.
pub fn unpause_job(
    snapshot: &SandboxSnapshot,
    status: &SandboxSnapshotStatus,
    pod: &str,
    namespace: &str,
    config: &SnapshotConfig,
) -> Job {
    let mut args = vec![
        "unpause".to_string(),
        pod.to_string(),
        namespace.to_string(),
    ];
    args.extend(status.containers.iter().map(|c| c.container_name.clone()));
    job(
        snapshot,
        JobShape {
            name: unpause_job_name(&snapshot.name_any()),
            namespace,
            node: status.source_node_name.as_deref(),
            args,
            backoff_limit: 0,
            push_secret: None,
        },
        config,
    )
}
