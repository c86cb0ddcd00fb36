//! Persistence of the embedded store in a state directory, so a restarted standalone process
//! keeps its Pools, BatchSandboxes and pods. The whole store is written atomically (temp file
//! + rename) shortly after changes and once more on shutdown; Events are not kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::registry::{ResourceKey, resources_from_crd};
use super::server::Core;
use super::store::ObjRef;

/// Problems reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct Entry {
    group: String,
    plural: String,
    object: Value,
}

/// The state file; written by [`encode_snapshot`].
#[derive(Deserialize)]
struct Snapshot {
    resource_version: u64,
    objects: Vec<Entry>,
}

fn is_event(res: &ResourceKey) -> bool {
    res.plural == "events"
}

/// Loads a state file into the store (before anything is served); returns the object count.
/// A missing file is an empty state.
pub fn load(core: &Core, path: &Path) -> Result<usize, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let snap: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| PersistError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    let count = snap.objects.len();
    for e in &snap.objects {
        if e.group == "apiextensions.k8s.io" && e.plural == "customresourcedefinitions" {
            for info in resources_from_crd(&e.object) {
                core.registry.insert(info);
            }
        }
    }
    let objects = snap
        .objects
        .into_iter()
        .map(|e| {
            (
                ResourceKey {
                    group: e.group,
                    plural: e.plural,
                },
                e.object,
            )
        })
        .collect();
    core.store.restore(snap.resource_version, objects);
    Ok(count)
}

/// Writes the whole store to `path` atomically.
pub fn save(core: &Core, path: &Path) -> Result<(), PersistError> {
    let (rv, objects) = core.store.snapshot();
    let write_err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let bytes = encode_snapshot(rv, &objects).map_err(|e| write_err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// The state file's JSON (a [`Snapshot`]), written from each object's stored encoding instead
/// of copying and encoding every object again: the saver runs twice a second under churn.
fn encode_snapshot(rv: u64, objects: &[(ResourceKey, ObjRef)]) -> serde_json::Result<Vec<u8>> {
    let size: usize = objects.iter().map(|(_, o)| o.json.len() + 64).sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(format!("{{\"resource_version\":{rv},\"objects\":[").as_bytes());
    let mut first = true;
    for (res, o) in objects.iter().filter(|(res, _)| !is_event(res)) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"group\":");
        serde_json::to_writer(&mut out, &res.group)?;
        out.extend_from_slice(b",\"plural\":");
        serde_json::to_writer(&mut out, &res.plural)?;
        out.extend_from_slice(b",\"object\":");
        out.extend_from_slice(&o.json);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Saves whenever the store changed, at most every `interval`.
pub fn spawn_saver(core: Weak<Core>, path: PathBuf, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut saved_rv = 0;
        loop {
            tokio::time::sleep(interval).await;
            let Some(core) = core.upgrade() else { break };
            let rv = core.store.current_rv();
            if rv == saved_rv {
                continue;
            }
            // Encoding and writing the file is blocking work; keep it off the request workers.
            let saved = {
                let (core, path) = (core.clone(), path.clone());
                tokio::task::spawn_blocking(move || save(&core, &path)).await
            };
            match saved.unwrap_or_else(|e| {
                Err(PersistError::Write {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })
            }) {
                Ok(()) => saved_rv = rv,
                Err(e) => tracing::warn!(error = %e, "persisting the embedded API server failed"),
            }
        }
    })
}

/// A running persistence: saves in the background, and once more on [`Persistence::flush`].
pub struct Persistence {
    core: Arc<Core>,
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Persistence {
    pub fn start(core: Arc<Core>, path: PathBuf) -> Result<(Self, usize), PersistError> {
        let loaded = load(&core, &path)?;
        let task = spawn_saver(
            Arc::downgrade(&core),
            path.clone(),
            Duration::from_millis(500),
        );
        Ok((Self { core, path, task }, loaded))
    }

    /// Stops the background saver and writes the final state.
    pub fn flush(self) -> Result<(), PersistError> {
        self.task.abort();
        save(&self.core, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standalone::apiserver::ApiServer;
    use crate::standalone::apiserver::store::Stored;
    use bytes::Bytes;

    async fn post(s: &ApiServer, path: &str, body: Value) -> u16 {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        s.request(req).await.status().as_u16()
    }

    #[tokio::test]
    async fn objects_and_crds_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = ApiServer::new();
        let crds: Vec<Value> = crate::crd::all_crds()
            .into_iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        s.install_crds(&crds).await.unwrap();
        let (p, loaded) = Persistence::start(s.core().clone(), path.clone()).unwrap();
        assert_eq!(loaded, 0);
        let pool = serde_json::json!({"apiVersion": "sandbox.opensandbox.io/v1alpha1", "kind": "Pool",
            "metadata": {"name": "kept"}, "spec": {"capacitySpec": {"bufferMin": 1, "bufferMax": 1, "poolMin": 0, "poolMax": 2}}});
        assert_eq!(
            post(
                &s,
                "/apis/sandbox.opensandbox.io/v1alpha1/namespaces/default/pools",
                pool
            )
            .await,
            201
        );
        let rv = s.core().store.current_rv();
        p.flush().unwrap();

        let s2 = ApiServer::new();
        let (_p2, loaded) = Persistence::start(s2.core().clone(), path).unwrap();
        assert!(loaded >= 4);
        let key = ResourceKey {
            group: "sandbox.opensandbox.io".into(),
            plural: "pools".into(),
        };
        let kept = s2
            .core()
            .store
            .get(&key, "default", "kept")
            .expect("pool restored");
        assert_eq!(kept.value["spec"]["capacitySpec"]["poolMax"], 2);
        assert!(
            s2.core()
                .registry
                .get("sandbox.opensandbox.io", "v1alpha1", "pools")
                .is_some()
        );
        assert!(
            s2.core().store.current_rv() >= rv,
            "resourceVersions never go back"
        );
    }

    #[test]
    fn the_state_file_is_each_object_s_stored_json_without_events() {
        let key = |group: &str, plural: &str| ResourceKey {
            group: group.into(),
            plural: plural.into(),
        };
        let pod = serde_json::json!({"metadata": {"name": "p\"1", "namespace": "default"}, "spec": {"x": [1, 2]}});
        let event = serde_json::json!({"metadata": {"name": "e", "namespace": "default"}});
        let objects = vec![
            (key("", "pods"), Stored::new(pod.clone())),
            (key("", "events"), Stored::new(event)),
            (
                key("sandbox.opensandbox.io", "pools"),
                Stored::new(serde_json::json!({})),
            ),
        ];
        let bytes = encode_snapshot(42, &objects).unwrap();
        let snap: Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(snap.resource_version, 42);
        let entries: Vec<(&str, &str, &Value)> = snap
            .objects
            .iter()
            .map(|e| (e.group.as_str(), e.plural.as_str(), &e.object))
            .collect();
        assert_eq!(
            entries,
            vec![
                ("", "pods", &pod),
                ("sandbox.opensandbox.io", "pools", &serde_json::json!({}))
            ]
        );
    }

    #[test]
    fn a_corrupt_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{broken").unwrap();
        let core = crate::standalone::apiserver::Core::new(Default::default());
        let err = load(&core, &path).unwrap_err();
        assert!(err.to_string().contains("not a valid state file"), "{err}");
    }
}
