//! Pure mapping between the wire models and BatchSandbox objects: the manifest a create
//! builds, and the `Sandbox` a BatchSandbox reads back as.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::models::{ImageRef, PlatformSpec, Sandbox, SandboxStatus};
use crate::crd::{BatchSandbox, SandboxPhase, keys};

/// Label holding the sandbox id on every BatchSandbox the API creates.
pub const LABEL_ID: &str = "opensandbox.io/id";
/// Label marking sandboxes without expiry.
pub const LABEL_MANUAL_CLEANUP: &str = "opensandbox.io/manual-cleanup";
/// Prefix of labels the API owns; hidden from user metadata.
pub const RESERVED_PREFIX: &str = "opensandbox.io/";
/// Where the executor binary lands inside the sandbox.
pub const EXECUTOR_PATH: &str = "/opt/opensandbox/bin/opensandbox-executor";
/// The executor inside its own image.
pub const EXECUTOR_SOURCE: &str = "/opensandbox-executor";
const BIN_VOLUME: &str = "opensandbox-bin";
const BIN_DIR: &str = "/opt/opensandbox/bin";
/// The SDK's default entrypoint.
pub const DEFAULT_ENTRYPOINT: [&str; 3] = ["tail", "-f", "/dev/null"];

/// What a validated create asks for.
#[derive(Clone, Debug)]
pub struct CreateSpec {
    pub id: String,
    pub namespace: String,
    pub image: Option<String>,
    pub entrypoint: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    pub requests: Option<BTreeMap<String, String>>,
    pub platform: Option<PlatformSpec>,
    pub expires_at: Option<DateTime<Utc>>,
    pub pool_ref: Option<String>,
    /// `secureAccess`: the executor's own access token (template mode only).
    pub access_token: Option<String>,
    /// Restored from this snapshot (its image becomes `image` before the build).
    pub snapshot_id: Option<String>,
    /// Secret for pulling `image` (a restored snapshot's registry).
    pub image_pull_secret: Option<String>,
}

/// Label of a sandbox restored from a snapshot: the snapshot's id.
pub const LABEL_SNAPSHOT_ID: &str = "opensandbox.io/snapshot-id";

/// Annotation holding a sandbox's executor access token (upstream's name).
pub const ANNOTATION_ACCESS_TOKEN: &str = keys::ANNOTATION_SECURE_ACCESS_TOKEN;
/// The executor reads its token from this variable and checks it in [`ACCESS_TOKEN_HEADER`].
pub const ACCESS_TOKEN_ENV: &str = "EXECD_ACCESS_TOKEN";
pub const ACCESS_TOKEN_HEADER: &str = "X-EXECD-ACCESS-TOKEN";

/// A fresh random access token: 244 random bits as 64 hex characters.
pub fn new_access_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The executor access token of a sandbox created with `secureAccess`.
pub fn access_token(bs: &BatchSandbox) -> Option<&str> {
    bs.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ACCESS_TOKEN)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}

/// RFC 3339 UTC with `Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn env_list(env: &BTreeMap<String, String>) -> Vec<Value> {
    env.iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

fn translate_resources(m: &BTreeMap<String, String>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let key = if k == "gpu" { "nvidia.com/gpu" } else { k };
            (key.to_string(), Value::String(v.clone()))
        })
        .collect()
}

/// The BatchSandbox a create produces (template mode, or pool mode with `pool_ref`).
pub fn build_batch_sandbox(spec: &CreateSpec, executor_image: &str, pull_policy: &str) -> Value {
    let mut labels: Map<String, Value> = spec
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    labels.insert(LABEL_ID.into(), Value::String(spec.id.clone()));
    if let Some(snapshot) = &spec.snapshot_id {
        labels.insert(LABEL_SNAPSHOT_ID.into(), Value::String(snapshot.clone()));
    }
    if spec.expires_at.is_none() {
        labels.insert(LABEL_MANUAL_CLEANUP.into(), "true".into());
    }
    let mut env = spec.env.clone();
    env.insert("OPENSANDBOX_ID".into(), spec.id.clone());

    let mut bs_spec = json!({"replicas": 1});
    if let Some(t) = &spec.expires_at {
        bs_spec["expireTime"] = Value::String(rfc3339(t));
    }
    if let Some(pool) = &spec.pool_ref {
        bs_spec["poolRef"] = Value::String(pool.clone());
        let default = spec.entrypoint.is_empty() || spec.entrypoint == DEFAULT_ENTRYPOINT;
        if !default || !spec.env.is_empty() {
            let command = if spec.entrypoint.is_empty() {
                DEFAULT_ENTRYPOINT.iter().map(|s| s.to_string()).collect()
            } else {
                spec.entrypoint.clone()
            };
            bs_spec["taskTemplate"] =
                json!({"spec": {"process": {"command": command, "env": env_list(&env)}}});
        }
    } else {
        let mut pod_labels = labels.clone();
        pod_labels.insert(keys::LABEL_MANAGED.into(), keys::LABEL_MANAGED_VALUE.into());
        let mut command = vec![EXECUTOR_PATH.to_string(), "--".to_string()];
        if spec.entrypoint.is_empty() {
            command.extend(DEFAULT_ENTRYPOINT.iter().map(|s| s.to_string()));
        } else {
            command.extend(spec.entrypoint.iter().cloned());
        }
        let mut env = env.clone();
        if let Some(token) = &spec.access_token {
            env.insert(ACCESS_TOKEN_ENV.into(), token.clone());
        }
        let mut container = json!({
            "name": "sandbox",
            "image": spec.image.clone().unwrap_or_default(),
            "imagePullPolicy": pull_policy,
            "command": command,
            "env": env_list(&env),
            "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
        });
        if !spec.limits.is_empty() || spec.requests.is_some() {
            let limits = translate_resources(&spec.limits);
            let requests = spec
                .requests
                .as_ref()
                .map(translate_resources)
                .unwrap_or_else(|| limits.clone());
            let mut res = Map::new();
            if !limits.is_empty() {
                res.insert("limits".into(), Value::Object(limits));
            }
            if !requests.is_empty() {
                res.insert("requests".into(), Value::Object(requests));
            }
            container["resources"] = Value::Object(res);
        }
        let mut pod_spec = json!({
            "automountServiceAccountToken": false,
            "initContainers": [{
                "name": "executor-installer",
                "image": executor_image,
                // The executor image is static-only (no shell): the binary installs itself.
                "command": [EXECUTOR_SOURCE, "install", EXECUTOR_PATH],
                "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
            }],
            "containers": [container],
            "volumes": [{"name": BIN_VOLUME, "emptyDir": {}}],
        });
        if let Some(secret) = &spec.image_pull_secret {
            pod_spec["imagePullSecrets"] = json!([{ "name": secret }]);
        }
        if let Some(p) = &spec.platform {
            pod_spec["nodeSelector"] =
                json!({"kubernetes.io/os": p.os, "kubernetes.io/arch": p.arch});
        }
        bs_spec["template"] = json!({"metadata": {"labels": pod_labels}, "spec": pod_spec});
    }
    let mut metadata = json!({"name": spec.id, "namespace": spec.namespace, "labels": labels});
    if let Some(token) = &spec.access_token {
        metadata["annotations"] = json!({ ANNOTATION_ACCESS_TOKEN: token });
    }
    json!({
        "apiVersion": "sandbox.opensandbox.io/v1alpha1",
        "kind": "BatchSandbox",
        "metadata": metadata,
        "spec": bs_spec,
    })
}

/// First pod IP of a sandbox, from the controller's endpoints annotation.
pub fn pod_ip(bs: &BatchSandbox) -> Option<String> {
    let raw = bs
        .metadata
        .annotations
        .as_ref()?
        .get(keys::ANNOTATION_ENDPOINTS)?;
    let ips: Vec<String> = serde_json::from_str(raw).ok()?;
    ips.into_iter().next().filter(|ip| !ip.trim().is_empty())
}

fn status(state: &str, reason: &str, message: String, at: Option<String>) -> SandboxStatus {
    SandboxStatus {
        state: state.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_at: at,
    }
}

/// The API state of a BatchSandbox (reference §4.2): the phase wins, else counters + IP.
pub fn sandbox_status(bs: &BatchSandbox) -> SandboxStatus {
    let at = created_at(bs).map(|t| rfc3339(&t));
    let st = bs.status.clone().unwrap_or_default();
    if let Some(phase) = st.phase {
        return match phase {
            SandboxPhase::Pending => {
                status("Pending", "CREATING", "Sandbox is being created".into(), at)
            }
            SandboxPhase::Succeed => status("Running", "RUNNING", "Sandbox is running".into(), at),
            SandboxPhase::Pausing => status("Pausing", "PAUSING", "Pausing sandbox".into(), at),
            SandboxPhase::Paused => status("Paused", "PAUSED", "Sandbox is paused".into(), at),
            SandboxPhase::Resuming => status("Resuming", "RESUMING", "Resuming sandbox".into(), at),
            SandboxPhase::Failed => {
                let msg = ["PodFailed", "ResumeFailed", "PauseFailed"]
                    .iter()
                    .find_map(|t| {
                        st.conditions
                            .iter()
                            .find(|c| c.type_ == *t && c.status == "True")
                            .and_then(|c| c.message.clone())
                    })
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "Operation failed".into());
                status("Failed", "FAILED", msg, at)
            }
        };
    }
    let replicas = bs.spec.replicas;
    match pod_ip(bs) {
        Some(_) if st.ready >= 1 => status(
            "Running",
            "POD_READY_WITH_IP",
            format!("Pod is ready with IP ({}/{replicas} ready)", st.ready),
            at,
        ),
        Some(_) => status(
            "Allocated",
            "IP_ASSIGNED",
            format!(
                "Pod has IP assigned but not ready ({}/{replicas} allocated, {} ready)",
                st.allocated, st.ready
            ),
            at,
        ),
        None if st.allocated > 0 => status(
            "Pending",
            "POD_SCHEDULED",
            format!(
                "Pod is scheduled but waiting for IP ({}/{replicas} allocated)",
                st.allocated
            ),
            at,
        ),
        None => status(
            "Pending",
            "BATCHSANDBOX_PENDING",
            "BatchSandbox is pending allocation".into(),
            at,
        ),
    }
}

fn created_at(bs: &BatchSandbox) -> Option<DateTime<Utc>> {
    bs.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| crate::cache::objects::to_chrono(&t.0))
}

/// Parses an RFC 3339 time; naive times count as UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// The sandbox id of a BatchSandbox the API created.
pub fn sandbox_id(bs: &BatchSandbox) -> Option<String> {
    bs.metadata.labels.as_ref()?.get(LABEL_ID).cloned()
}

/// User metadata: labels outside the `opensandbox.io` prefix.
pub fn user_metadata(bs: &BatchSandbox) -> BTreeMap<String, String> {
    bs.metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| k.split_once('/').map(|(p, _)| p) != Some("opensandbox.io"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads a BatchSandbox back as the wire `Sandbox`.
pub fn to_sandbox(bs: &BatchSandbox) -> Sandbox {
    let id = sandbox_id(bs).unwrap_or_else(|| bs.metadata.name.clone().unwrap_or_default());
    let container = bs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.pointer("/spec/containers/0"));
    let image = match container {
        Some(c) => c.get("image").and_then(Value::as_str).map(str::to_string),
        None => Some("unknown".to_string()),
    };
    let mut entrypoint: Vec<String> = container
        .and_then(|c| c.get("command"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    if entrypoint.first().map(String::as_str) == Some(EXECUTOR_PATH) {
        entrypoint.drain(..2.min(entrypoint.len()));
    } else if container.is_none() {
        entrypoint = bs
            .spec
            .task_template
            .as_ref()
            .and_then(|t| t.pointer("/spec/process/command"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_else(|| DEFAULT_ENTRYPOINT.iter().map(|s| s.to_string()).collect());
    }
    let platform = bs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.pointer("/spec/nodeSelector"))
        .and_then(|ns| {
            Some(PlatformSpec {
                os: ns.get("kubernetes.io/os")?.as_str()?.to_string(),
                arch: ns.get("kubernetes.io/arch")?.as_str()?.to_string(),
            })
        });
    let metadata = user_metadata(bs);
    let snapshot_id = bs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SNAPSHOT_ID))
        .cloned();
    Sandbox {
        id,
        image: image
            .filter(|_| snapshot_id.is_none())
            .map(|uri| ImageRef { uri }),
        snapshot_id,
        platform,
        status: sandbox_status(bs),
        metadata: (!metadata.is_empty()).then_some(metadata),
        entrypoint,
        expires_at: bs
            .spec
            .expire_time
            .as_deref()
            .and_then(parse_time)
            .map(|t| rfc3339(&t)),
        created_at: created_at(bs).map(|t| rfc3339(&t)).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CreateSpec {
        CreateSpec {
            id: "abc".into(),
            namespace: "ns".into(),
            image: Some("python:3.11".into()),
            entrypoint: vec!["python".into(), "-m".into(), "http.server".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            metadata: BTreeMap::from([("team".into(), "infra".into())]),
            limits: BTreeMap::from([("cpu".into(), "1".into()), ("gpu".into(), "1".into())]),
            requests: None,
            platform: None,
            expires_at: None,
            pool_ref: None,
            access_token: None,
            snapshot_id: None,
            image_pull_secret: None,
        }
    }

    #[test]
    fn template_manifest_injects_the_executor() {
        let v = build_batch_sandbox(&spec(), "exec:1", "IfNotPresent");
        assert_eq!(v["metadata"]["labels"][LABEL_ID], "abc");
        assert_eq!(v["metadata"]["labels"][LABEL_MANUAL_CLEANUP], "true");
        assert!(v["spec"].get("expireTime").is_none());
        let pod = &v["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"][keys::LABEL_MANAGED], "true");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["command"][0], EXECUTOR_PATH);
        assert_eq!(c["command"][1], "--");
        assert_eq!(c["command"][2], "python");
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(pod["spec"]["initContainers"][0]["image"], "exec:1");
        let bs: BatchSandbox = serde_json::from_value(v).unwrap();
        let sb = to_sandbox(&bs);
        assert_eq!(sb.entrypoint, vec!["python", "-m", "http.server"]);
        assert_eq!(sb.metadata.unwrap()["team"], "infra");
        assert_eq!(sb.status.state, "Pending");
    }

    #[test]
    fn secure_access_gives_the_executor_its_own_token() {
        let mut s = spec();
        s.access_token = Some(new_access_token());
        let v = build_batch_sandbox(&s, "exec:1", "IfNotPresent");
        let token = s.access_token.unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(v["metadata"]["annotations"][ANNOTATION_ACCESS_TOKEN], token);
        let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_array()
                .unwrap()
                .contains(&json!({"name": ACCESS_TOKEN_ENV, "value": token}))
        );
        let bs: BatchSandbox = serde_json::from_value(v).unwrap();
        assert_eq!(access_token(&bs), Some(token.as_str()));
        assert_ne!(new_access_token(), new_access_token());
        let plain: BatchSandbox =
            serde_json::from_value(build_batch_sandbox(&spec(), "exec:1", "IfNotPresent")).unwrap();
        assert_eq!(access_token(&plain), None);
    }

    #[test]
    fn pool_manifest_has_no_template() {
        let mut s = spec();
        s.pool_ref = Some("warm".into());
        s.expires_at = DateTime::from_timestamp(1_900_000_000, 0);
        let v = build_batch_sandbox(&s, "exec:1", "IfNotPresent");
        assert_eq!(v["spec"]["poolRef"], "warm");
        assert!(v["spec"].get("template").is_none());
        assert_eq!(v["spec"]["expireTime"], "2030-03-17T17:46:40Z");
        assert_eq!(
            v["spec"]["taskTemplate"]["spec"]["process"]["command"][0],
            "python"
        );
    }

    #[test]
    fn times_parse_with_and_without_zone() {
        assert!(parse_time("2026-01-01T00:10:00.123456+00:00").is_some());
        assert!(parse_time("2026-01-01T00:10:00Z").is_some());
        assert!(parse_time("2026-01-01T00:10:00").is_some());
        assert!(parse_time("not-a-datetime").is_none());
    }

    fn with_status(status: Value, endpoints: Option<&str>) -> BatchSandbox {
        let mut v = build_batch_sandbox(&spec(), "exec:1", "IfNotPresent");
        v["status"] = status;
        if let Some(e) = endpoints {
            v["metadata"]["annotations"] = json!({keys::ANNOTATION_ENDPOINTS: e});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn state_mapping_follows_phase_then_counters() {
        let cases = [
            (json!({"phase": "Succeed"}), None, "Running", "RUNNING"),
            (json!({"phase": "Pending"}), None, "Pending", "CREATING"),
            (json!({"phase": "Paused"}), None, "Paused", "PAUSED"),
            (json!({"phase": "Failed"}), None, "Failed", "FAILED"),
            (
                json!({"ready": 1}),
                Some("[\"10.0.0.1\"]"),
                "Running",
                "POD_READY_WITH_IP",
            ),
            (
                json!({"allocated": 1}),
                Some("[\"10.0.0.1\"]"),
                "Allocated",
                "IP_ASSIGNED",
            ),
            (
                json!({"allocated": 1}),
                Some("not json"),
                "Pending",
                "POD_SCHEDULED",
            ),
            (json!({}), Some("[]"), "Pending", "BATCHSANDBOX_PENDING"),
        ];
        for (status, endpoints, state, reason) in cases {
            let st = sandbox_status(&with_status(status.clone(), endpoints));
            assert_eq!(st.state, state, "{status}");
            assert_eq!(st.reason.as_deref(), Some(reason), "{status}");
        }
        let failed = with_status(
            json!({"phase": "Failed", "conditions": [{"type": "PodFailed", "status": "True", "message": "OOMKilled"}]}),
            None,
        );
        assert_eq!(
            sandbox_status(&failed).message.as_deref(),
            Some("OOMKilled")
        );
    }
}
