//! Asynchronous garbage collection by ownerReferences, as the controller manager's garbage
//! collector does it: background deletion of dependents whose owners are gone, foreground
//! deletion (owner waits for blocking dependents) and orphaning.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::handlers::delete::{
    DeleteOptions, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Propagation, delete_object,
};
use super::registry::ResourceInfo;
use super::server::Core;
use super::store::{CommitError, Mutation, ObjRef};

/// Work items of the collector.
#[derive(Debug)]
pub enum GcWork {
    /// An object with this uid is gone: collect or detach its dependents.
    OwnerGone(String),
    /// An object is being deleted with a foreground or orphan finalizer.
    Finalizing {
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
    },
    /// A namespace is gone: delete everything in it.
    NamespaceGone(String),
}

/// The queue feeding the collector; the worker starts with the server.
pub struct GcQueue {
    tx: mpsc::UnboundedSender<GcWork>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<GcWork>>>,
}

impl Default for GcQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl GcQueue {
    pub fn enqueue_owner_gone(&self, uid: &str) {
        if !uid.is_empty() {
            let _ = self.tx.send(GcWork::OwnerGone(uid.to_string()));
        }
    }

    pub fn enqueue_namespace_gone(&self, ns: &str) {
        let _ = self.tx.send(GcWork::NamespaceGone(ns.to_string()));
    }

    /// Called when an object is marked for deletion and when its dependents change.
    pub fn enqueue_finalizing(&self, res: &ResourceInfo, obj: &ObjRef) {
        let _ = self.tx.send(GcWork::Finalizing {
            api_version: res.api_version(),
            kind: res.kind.clone(),
            namespace: obj.namespace().to_string(),
            name: obj.name().to_string(),
        });
    }

    fn enqueue_owner_recheck(&self, obj: &Value) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        for r in obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let _ = self.tx.send(GcWork::Finalizing {
                api_version: r["apiVersion"].as_str().unwrap_or_default().to_string(),
                kind: r["kind"].as_str().unwrap_or_default().to_string(),
                namespace: ns.to_string(),
                name: r["name"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
}

/// Starts the collector for `core` (once).
pub fn start(core: &Arc<Core>) {
    let Some(mut rx) = core.gc.rx.lock().take() else {
        return;
    };
    let weak: Weak<Core> = Arc::downgrade(core);
    tokio::spawn(async move {
        while let Some(work) = rx.recv().await {
            let Some(core) = weak.upgrade() else { break };
            process(&core, work);
        }
    });
}

fn process(core: &Arc<Core>, work: GcWork) {
    match work {
        GcWork::OwnerGone(uid) => {
            for (rk, (ns, name)) in core.store.dependents(&uid) {
                collect_dependent(core, &rk.group, &rk.plural, &ns, &name, &uid);
            }
        }
        GcWork::Finalizing {
            api_version,
            kind,
            namespace,
            name,
        } => {
            if let Some(res) = core.registry.by_kind(&api_version, &kind) {
                let ns = if res.namespaced {
                    namespace.as_str()
                } else {
                    ""
                };
                finalize_owner(core, &res, ns, &name);
            }
        }
        GcWork::NamespaceGone(ns) => {
            for res in core.registry.all() {
                if !res.namespaced {
                    continue;
                }
                let (items, _) = core.store.list(&res.key(), Some(&ns));
                for obj in items {
                    let _ = delete_object(core, &res, &ns, obj.name(), &DeleteOptions::default());
                }
            }
        }
    }
}

/// Resource info for a stored group/plural (any served version).
fn info_for(core: &Core, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
    core.registry
        .all()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// True when the owner an ownerReference names exists with that uid.
fn owner_alive(core: &Core, dependent_ns: &str, r: &Value) -> bool {
    let (Some(av), Some(kind), Some(name), Some(uid)) = (
        r["apiVersion"].as_str(),
        r["kind"].as_str(),
        r["name"].as_str(),
        r["uid"].as_str(),
    ) else {
        return false;
    };
    let Some(res) = core.registry.by_kind(av, kind) else {
        return false;
    };
    let ns = if res.namespaced { dependent_ns } else { "" };
    core.store
        .get(&res.key(), ns, name)
        .is_some_and(|o| o.uid() == uid)
}

fn collect_dependent(
    core: &Arc<Core>,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    gone_uid: &str,
) {
    let Some(res) = info_for(core, group, plural) else {
        return;
    };
    let key = (ns.to_string(), name.to_string());
    loop {
        let Some(obj) = core.store.get(&res.key(), ns, name) else {
            return;
        };
        let refs: Vec<Value> = obj.value["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let others: Vec<Value> = refs
            .iter()
            .filter(|r| r["uid"].as_str() != Some(gone_uid))
            .cloned()
            .collect();
        if others.iter().any(|r| owner_alive(core, ns, r)) {
            let mut new = obj.value.clone();
            new["metadata"]["ownerReferences"] = json!(others);
            match core
                .store
                .commit(&res.key(), &key, Some(&obj), Mutation::Put(new))
            {
                Ok(_) => return,
                Err(CommitError::Raced) => continue,
            }
        }
        let _ = delete_object(
            core,
            &res,
            ns,
            name,
            &DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            },
        );
        return;
    }
}

/// Drives an owner that is being deleted with the foreground or orphan finalizer.
fn finalize_owner(core: &Arc<Core>, res: &Arc<ResourceInfo>, ns: &str, name: &str) {
    let key = (ns.to_string(), name.to_string());
    loop {
        let Some(owner) = core.store.get(&res.key(), ns, name) else {
            return;
        };
        if !owner.value["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let finalizers: Vec<String> = owner.value["metadata"]["finalizers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let uid = owner.uid().to_string();
        let mut remove = None;
        if finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
            for (rk, (dns, dname)) in core.store.dependents(&uid) {
                detach(core, &rk.group, &rk.plural, &dns, &dname, &uid);
            }
            remove = Some(FINALIZER_ORPHAN);
        } else if finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
            let mut blocking = 0;
            for (rk, (dns, dname)) in core.store.dependents(&uid) {
                let Some(dres) = info_for(core, &rk.group, &rk.plural) else {
                    continue;
                };
                let Some(dep) = core.store.get(&rk, &dns, &dname) else {
                    continue;
                };
                let blocks = dep.value["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| {
                        r["uid"].as_str() == Some(uid.as_str())
                            && r["blockOwnerDeletion"] == json!(true)
                    });
                if blocks {
                    blocking += 1;
                }
                if !dep.value["metadata"]["deletionTimestamp"].is_string() {
                    let _ = delete_object(
                        core,
                        &dres,
                        &dns,
                        &dname,
                        &DeleteOptions {
                            propagation: Some(Propagation::Foreground),
                            ..Default::default()
                        },
                    );
                }
            }
            if blocking == 0 {
                remove = Some(FINALIZER_FOREGROUND);
            }
        }
        let Some(remove) = remove else { return };
        let left: Vec<String> = finalizers.into_iter().filter(|f| f != remove).collect();
        let mut new = owner.value.clone();
        new["metadata"]["finalizers"] = json!(left);
        let mutation = if left.is_empty() {
            Mutation::Delete(new)
        } else {
            Mutation::Put(new)
        };
        let gone = matches!(mutation, Mutation::Delete(_));
        match core.store.commit(&res.key(), &key, Some(&owner), mutation) {
            Ok(change) => {
                if gone {
                    super::handlers::delete::after_delete(core, res, &change.object);
                }
                return;
            }
            Err(CommitError::Raced) => continue,
        }
    }
}

fn detach(core: &Arc<Core>, group: &str, plural: &str, ns: &str, name: &str, owner_uid: &str) {
    let Some(res) = info_for(core, group, plural) else {
        return;
    };
    let key = (ns.to_string(), name.to_string());
    loop {
        let Some(obj) = core.store.get(&res.key(), ns, name) else {
            return;
        };
        let refs: Vec<Value> = obj.value["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["uid"].as_str() != Some(owner_uid))
            .cloned()
            .collect();
        let mut new = obj.value.clone();
        if refs.is_empty() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("ownerReferences");
            }
        } else {
            new["metadata"]["ownerReferences"] = json!(refs);
        }
        match core
            .store
            .commit(&res.key(), &key, Some(&obj), Mutation::Put(new))
        {
            Ok(_) => return,
            Err(CommitError::Raced) => continue,
        }
    }
}

/// When a dependent disappears, owners in foreground deletion may be done waiting.
pub fn dependent_gone(core: &Core, obj: &ObjRef) {
    core.gc.enqueue_owner_recheck(&obj.value);
}

/// A dependent written with an owner that is already gone (a controller acting on a stale
/// cache after the owner's deletion) is collected like the real collector does with
/// dangling references; otherwise it would outlive its owner forever.
pub fn dependent_written(core: &Core, obj: &ObjRef) {
    if !obj.value["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    for r in obj.value["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let resolvable = r["apiVersion"]
            .as_str()
            .zip(r["kind"].as_str())
            .is_some_and(|(av, kind)| core.registry.by_kind(av, kind).is_some());
        if resolvable && !owner_alive(core, obj.namespace(), r) {
            core.gc
                .enqueue_owner_gone(r["uid"].as_str().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use serde_json::json;

    use crate::standalone::apiserver::ApiServer;

    fn config_map(name: &str, owner: Option<(&str, &str)>) -> ConfigMap {
        let refs = owner.map(|(name, uid)| {
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": refs}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_dependent_created_after_its_owner_is_gone_is_collected() {
        let server = ApiServer::new();
        let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
        let owner = api
            .create(&Default::default(), &config_map("owner", None))
            .await
            .unwrap();
        let uid = owner.metadata.uid.unwrap();
        api.create(
            &Default::default(),
            &config_map("kept", Some(("owner", &uid))),
        )
        .await
        .unwrap();
        api.delete("owner", &Default::default()).await.unwrap();
        // Created with a reference to the deleted owner, as from a stale cache.
        api.create(
            &Default::default(),
            &config_map("late", Some(("owner", &uid))),
        )
        .await
        .unwrap();
        // And one naming a live owner by a uid it never had.
        let live = api
            .create(&Default::default(), &config_map("live", None))
            .await
            .unwrap();
        api.create(
            &Default::default(),
            &config_map("stale-uid", Some(("live", "not-its-uid"))),
        )
        .await
        .unwrap();
        api.create(
            &Default::default(),
            &config_map(
                "fine",
                Some(("live", live.metadata.uid.as_deref().unwrap())),
            ),
        )
        .await
        .unwrap();
        for _ in 0..200 {
            let left: Vec<String> = ["kept", "late", "stale-uid"]
                .into_iter()
                .filter(|n| {
                    server
                        .core()
                        .store
                        .get(&cm_key(&server), "default", n)
                        .is_some()
                })
                .map(str::to_string)
                .collect();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for gone in ["kept", "late", "stale-uid"] {
            assert!(
                api.get_opt(gone).await.unwrap().is_none(),
                "{gone} is collected"
            );
        }
        assert!(api.get_opt("fine").await.unwrap().is_some());
        assert!(api.get_opt("live").await.unwrap().is_some());
    }

    fn cm_key(server: &ApiServer) -> crate::standalone::apiserver::registry::ResourceKey {
        server
            .core()
            .registry
            .get("", "v1", "configmaps")
            .unwrap()
            .key()
    }
}
