//! Template-mode scaling: which replica indexes to create and which pods to delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::objects::PodInfo;
use crate::crd::BatchSandbox;

use super::template::pod_name;

/// A pod whose replica index can be read neither from its label nor from its name.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("pod {pod} has no replica index: no valid pod-index label and no numeric name suffix")]
pub struct IndexError {
    pub pod: String,
}

/// What the actor does this turn for a template-mode sandbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplatePlan {
    /// Replica indexes to create (`<bs>-<index>`), ascending.
    pub create: Vec<u32>,
    /// Pods to delete, highest index first: beyond `replicas`, dead, or duplicates.
    pub delete: Vec<String>,
    /// Owned pods with no readable index; the plan leaves them alone (report them).
    pub unparsable: Vec<IndexError>,
}

impl TemplatePlan {
    /// Nothing to create or delete.
    pub fn is_steady(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// Replica index from the `pod-index` label, else from the name suffix after the last `-`.
pub fn parse_index(label: Option<&str>, name: &str) -> Result<u32, IndexError> {
    label
        .and_then(|l| l.parse().ok())
        .or_else(|| name.rsplit_once('-').and_then(|(_, s)| s.parse().ok()))
        .ok_or_else(|| IndexError {
            pod: name.to_string(),
        })
}

/// [`parse_index`] for a cached pod (whose label is already parsed into `pod_index`).
pub fn pod_index(pod: &PodInfo) -> Result<u32, IndexError> {
    match pod.pod_index {
        Some(i) => Ok(i),
        None => parse_index(None, &pod.name),
    }
}

/// Plans one turn for `pods` (the pods owned by `bs`, terminating ones included).
///
/// Terminating pods hold their index, so a name is never created twice; a deleted pod comes
/// back under the same name once it is gone. A replica retired after its task finished
/// (`released-tasks`) loses its pod and never gets another.
pub fn template_plan(bs: &BatchSandbox, pods: &[Arc<PodInfo>]) -> TemplatePlan {
    let replicas = u32::try_from(bs.spec.replicas).unwrap_or(0);
    let retired = bs.released_tasks();
    let restart_always = restart_policy(bs) == "Always";
    let mut plan = TemplatePlan::default();
    let mut by_index: BTreeMap<u32, Vec<&PodInfo>> = BTreeMap::new();
    for pod in pods {
        match pod_index(pod) {
            Ok(i) => by_index.entry(i).or_default().push(pod),
            Err(e) => plan.unparsable.push(e),
        }
    }
    let mut delete: Vec<(u32, String)> = Vec::new();
    for (&index, group) in &by_index {
        let live: Vec<&PodInfo> = group.iter().copied().filter(|p| !p.deleting).collect();
        if index >= replicas || retired.contains(index) {
            delete.extend(live.iter().map(|p| (index, p.name.clone())));
            continue;
        }
        let keeper = keeper(bs, index, &live);
        for pod in live {
            let duplicate = keeper.is_some_and(|k| k.uid != pod.uid);
            if duplicate || is_dead(pod, restart_always) {
                delete.push((index, pod.name.clone()));
            }
        }
    }
    delete.sort_by(|a, b| b.cmp(a));
    plan.delete = delete.into_iter().map(|(_, name)| name).collect();
    plan.create = (0..replicas)
        .filter(|i| !by_index.contains_key(i) && !retired.contains(*i))
        .collect();
    plan
}

/// The pod kept when several live pods claim one index: the one with the canonical name,
/// else the oldest.
fn keeper<'a>(bs: &BatchSandbox, index: u32, live: &[&'a PodInfo]) -> Option<&'a PodInfo> {
    let canonical = pod_name(bs, index);
    live.iter()
        .copied()
        .min_by_key(|p| (p.name != canonical, p.created, p.name.clone()))
}

/// A pod that can never become Ready again.
fn is_dead(pod: &PodInfo, restart_always: bool) -> bool {
    pod.phase == "Failed" || (pod.phase == "Succeeded" && restart_always)
}

fn restart_policy(bs: &BatchSandbox) -> &str {
    bs.spec
        .template
        .as_ref()
        .and_then(|t| t["spec"]["restartPolicy"].as_str())
        .unwrap_or("Always")
}
