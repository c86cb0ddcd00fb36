//! What the embedded API server knows about each resource: names, scope, verbs,
//! subresources, printer columns and (for custom resources) the validation schema.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

/// A printer column of a CRD (`additionalPrinterColumns`) or of a built-in Table.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    /// kubectl-style JSONPath such as `.status.total`.
    pub json_path: String,
}

/// The scale subresource of a CRD.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleSubresource {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// One served resource (group, version, plural).
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    pub scale: Option<ScaleSubresource>,
    pub printer_columns: Vec<PrinterColumn>,
    /// `openAPIV3Schema` of a custom resource version.
    pub schema: Option<Arc<Value>>,
    /// Extra field selector paths a CRD declares (`selectableFields`).
    pub selectable_fields: Vec<String>,
    /// Built-in kinds accept strategic merge patches; custom resources answer 415.
    pub builtin: bool,
}

impl ResourceInfo {
    /// `apiVersion` of objects of this resource.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or the plural alone for the core group), as errors name resources.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Group-resource key used for storage.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Verbs served on the main resource.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// Storage identity of a resource: objects are shared across versions of a group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub group: String,
    pub plural: String,
}

/// Registry of served resources, updated when CRDs are created or deleted.
#[derive(Default)]
pub struct Registry {
    /// (group, version, plural) -> info
    by_path: RwLock<HashMap<(String, String, String), Arc<ResourceInfo>>>,
}

impl Registry {
    /// A registry serving the built-in kinds.
    pub fn with_builtins() -> Self {
        let reg = Registry::default();
        for info in builtin_resources() {
            reg.insert(info);
        }
        reg
    }

    pub fn insert(&self, info: ResourceInfo) {
        let key = (
            info.group.clone(),
            info.version.clone(),
            info.plural.clone(),
        );
        self.by_path.write().insert(key, Arc::new(info));
    }

    /// Removes every version of `group/plural` (a deleted CRD).
    pub fn remove(&self, group: &str, plural: &str) {
        self.by_path
            .write()
            .retain(|(g, _, p), _| !(g == group && p == plural));
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_path
            .read()
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Finds the resource for an `apiVersion` and `kind` (used for ownerReferences, events).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = split_api_version(api_version);
        self.by_path
            .read()
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Every served resource, sorted by group, version and plural.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let mut v: Vec<_> = self.by_path.read().values().cloned().collect();
        v.sort_by(|a, b| {
            (group_rank(&a.group), &a.group, &a.version, &a.plural).cmp(&(
                group_rank(&b.group),
                &b.group,
                &b.version,
                &b.plural,
            ))
        });
        v
    }

    /// Groups with their versions in preference order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }
}

fn group_rank(group: &str) -> u8 {
    if group.is_empty() { 0 } else { 1 }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

/// Splits `group/version` (or `v1`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// A built-in kind: group, version, kind, plural, namespaced, short names, status
/// subresource, member of the `all` category.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
);

const BUILTINS: &[Builtin] = &[
    ("", "v1", "Pod", "pods", true, &["po"], true, true),
    ("", "v1", "Service", "services", true, &["svc"], true, true),
    (
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    ),
    ("", "v1", "Secret", "secrets", true, &[], false, false),
    (
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    ("", "v1", "Event", "events", true, &["ev"], false, false),
    (
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    ("", "v1", "Node", "nodes", false, &["no"], true, false),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        false,
        false,
    ),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
        false,
        false,
    ),
    ("batch", "v1", "Job", "jobs", true, &[], true, true),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        true,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
        &[],
        false,
        false,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        true,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
        false,
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
        false,
        false,
    ),
    (
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        false,
        &[],
        false,
        false,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
    ),
];

fn builtin_resources() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, kind, plural, namespaced, short, status, all)| ResourceInfo {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                list_kind: format!("{}List", kind),
                plural: plural.to_string(),
                singular: kind.to_lowercase(),
                namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: if all { vec!["all".to_string()] } else { vec![] },
                has_status: status,
                scale: None,
                printer_columns: vec![],
                schema: None,
                selectable_fields: vec![],
                builtin: true,
            },
        )
        .collect()
}

/// Builds the resources a CustomResourceDefinition serves (one per served version).
pub fn resources_from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        type_: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        description: c["description"].as_str().unwrap_or_default().to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0) as i32,
                        json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let sub = &v["subresources"];
        let scale = sub
            .get("scale")
            .filter(|s| s.is_object())
            .map(|s| ScaleSubresource {
                spec_replicas_path: s["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas")
                    .to_string(),
                status_replicas_path: s["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas")
                    .to_string(),
                label_selector_path: s["labelSelectorPath"].as_str().map(str::to_string),
            });
        out.push(ResourceInfo {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or_default().to_string(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            has_status: sub.get("status").is_some_and(|s| s.is_object()),
            scale,
            printer_columns: columns,
            schema: v["schema"]
                .get("openAPIV3Schema")
                .filter(|s| s.is_object())
                .map(|s| Arc::new(s.clone())),
            selectable_fields: v["selectableFields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| {
                            f["jsonPath"]
                                .as_str()
                                .map(|p| p.trim_start_matches('.').to_string())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            builtin: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_resources_carry_columns_and_schema() {
        let crd = serde_json::to_value(crate::crd::all_crds()[1].clone()).unwrap();
        let res = resources_from_crd(&crd);
        assert_eq!(res.len(), 1);
        let r = &res[0];
        assert_eq!(r.plural, "batchsandboxes");
        assert_eq!(r.short_names, vec!["bsbx"]);
        assert!(r.has_status);
        assert!(r.schema.is_some());
        assert_eq!(r.printer_columns[0].name, "DESIRED");
    }

    #[test]
    fn version_order() {
        let mut v = vec!["v1alpha1", "v2", "v1beta1", "v1"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v1beta1", "v1alpha1"]);
    }
}
