//! Typed readers and writers for the annotations that carry allocation state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys;

/// Problems reading a ledger annotation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("annotation {key} is not valid JSON of the form {{\"pods\":[...]}}: {reason}")]
    Malformed { key: String, reason: String },
}

/// The `{"pods":[...]}` payload of `alloc-status`, `alloc-release` and `alloc-released`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PodList {
    #[serde(default)]
    pub pods: Vec<String>,
}

impl PodList {
    pub fn new(pods: Vec<String>) -> Self {
        Self { pods }
    }

    /// Parses the annotation `key` from `annotations`; absent or empty means no pods.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
        key: &str,
    ) -> Result<Self, LedgerError> {
        match annotations.and_then(|a| a.get(key)) {
            None => Ok(Self::default()),
            Some(raw) if raw.trim().is_empty() => Ok(Self::default()),
            Some(raw) => serde_json::from_str(raw).map_err(|e| LedgerError::Malformed {
                key: key.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// The annotation value.
    pub fn to_annotation(&self) -> String {
        // Serialising a list of strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{\"pods\":[]}".to_string())
    }
}

/// The three ledger annotations of one BatchSandbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub status: PodList,
    pub release: PodList,
    pub released: PodList,
}

impl Ledger {
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, LedgerError> {
        Ok(Self {
            status: PodList::from_annotations(annotations, keys::ANNOTATION_ALLOC_STATUS)?,
            release: PodList::from_annotations(annotations, keys::ANNOTATION_ALLOC_RELEASE)?,
            released: PodList::from_annotations(annotations, keys::ANNOTATION_ALLOC_RELEASED)?,
        })
    }

    /// Pods the sandbox holds now: allocated and neither released nor asked to be released.
    pub fn held(&self) -> Vec<String> {
        self.status
            .pods
            .iter()
            .filter(|p| !is_empty_slot(p))
            .filter(|p| !self.released.pods.contains(p) && !self.release.pods.contains(p))
            .cloned()
            .collect()
    }

    /// The pod of every replica index, `None` where the slot is empty or being released.
    pub fn by_index(&self) -> Vec<Option<String>> {
        self.status
            .pods
            .iter()
            .map(|p| {
                let gone = is_empty_slot(p)
                    || self.released.pods.contains(p)
                    || self.release.pods.contains(p);
                (!gone).then(|| p.clone())
            })
            .collect()
    }
}

/// `alloc-status` is positional (entry i is replica i's pod); an empty string keeps the
/// position of a replica that has no pod right now.
pub fn is_empty_slot(pod: &str) -> bool {
    pod.is_empty()
}

/// The `released-tasks` annotation: replica index -> final task state (`SUCCEED`/`FAILED`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct ReleasedTasks(pub BTreeMap<u32, String>);

impl ReleasedTasks {
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, LedgerError> {
        match annotations.and_then(|a| a.get(keys::ANNOTATION_RELEASED_TASKS)) {
            None => Ok(Self::default()),
            Some(raw) if raw.trim().is_empty() => Ok(Self::default()),
            Some(raw) => serde_json::from_str(raw).map_err(|e| LedgerError::Malformed {
                key: keys::ANNOTATION_RELEASED_TASKS.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn contains(&self, index: u32) -> bool {
        self.0.contains_key(&index)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Parses the endpoints annotation (a JSON array of pod IPs).
pub fn parse_endpoints(raw: &str) -> Result<Vec<String>, LedgerError> {
    serde_json::from_str(raw).map_err(|e| LedgerError::Malformed {
        key: keys::ANNOTATION_ENDPOINTS.to_string(),
        reason: e.to_string(),
    })
}

/// Renders the endpoints annotation.
pub fn endpoints_annotation(ips: &[String]) -> String {
    serde_json::to_string(ips).unwrap_or_else(|_| "[]".to_string())
}

/// `restart-record` on a pool pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestartRecord {
    pub id: String,
    pub start_time: String,
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retry_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
}

/// `restart-config` on a Pool; unparsable values fall back to the defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct RestartConfig {
    pub blacklist: Vec<String>,
    pub retry_interval: String,
    pub max_retries: u32,
    pub restart_command: Vec<String>,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            blacklist: Vec::new(),
            retry_interval: "30s".to_string(),
            max_retries: 3,
            restart_command: vec!["kill".to_string(), "1".to_string()],
        }
    }
}

impl RestartConfig {
    pub fn parse(raw: Option<&str>) -> Self {
        raw.and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ledger_roundtrip_and_held() {
        let a = ann(&[
            (keys::ANNOTATION_ALLOC_STATUS, r#"{"pods":["a","b","c"]}"#),
            (keys::ANNOTATION_ALLOC_RELEASE, r#"{"pods":["b"]}"#),
            (keys::ANNOTATION_ALLOC_RELEASED, r#"{"pods":["c"]}"#),
        ]);
        let l = Ledger::from_annotations(Some(&a)).unwrap();
        assert_eq!(l.held(), vec!["a".to_string()]);
        assert_eq!(l.status.to_annotation(), r#"{"pods":["a","b","c"]}"#);
    }

    #[test]
    fn empty_slots_keep_positions_and_hold_nothing() {
        let a = ann(&[
            (
                keys::ANNOTATION_ALLOC_STATUS,
                r#"{"pods":["a","","c","d"]}"#,
            ),
            (keys::ANNOTATION_ALLOC_RELEASE, r#"{"pods":["d"]}"#),
        ]);
        let l = Ledger::from_annotations(Some(&a)).unwrap();
        assert_eq!(l.held(), vec!["a".to_string(), "c".to_string()]);
        assert_eq!(
            l.by_index(),
            vec![Some("a".to_string()), None, Some("c".to_string()), None]
        );
    }

    #[test]
    fn released_tasks_roundtrip() {
        let a = ann(&[(
            keys::ANNOTATION_RELEASED_TASKS,
            r#"{"0":"SUCCEED","7":"FAILED"}"#,
        )]);
        let r = ReleasedTasks::from_annotations(Some(&a)).unwrap();
        assert!(r.contains(7) && !r.contains(1));
        assert_eq!(r.to_annotation(), r#"{"0":"SUCCEED","7":"FAILED"}"#);
        let bad = ann(&[(keys::ANNOTATION_RELEASED_TASKS, "[1]")]);
        assert!(ReleasedTasks::from_annotations(Some(&bad)).is_err());
    }

    #[test]
    fn malformed_ledger_is_an_error_not_a_panic() {
        let a = ann(&[(keys::ANNOTATION_ALLOC_STATUS, "{not json")]);
        let err = Ledger::from_annotations(Some(&a)).unwrap_err();
        assert!(err.to_string().contains(keys::ANNOTATION_ALLOC_STATUS));
    }

    #[test]
    fn restart_config_defaults_on_garbage() {
        assert_eq!(RestartConfig::parse(Some("nope")), RestartConfig::default());
        let c = RestartConfig::parse(Some(r#"{"maxRetries":5}"#));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.retry_interval, "30s");
    }
}
