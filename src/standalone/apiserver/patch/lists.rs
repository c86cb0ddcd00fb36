//! How lists merge: the built-in merge-key table (shared by strategic merge and server-side
//! apply) and list semantics read from a CRD's `openAPIV3Schema`.

use serde_json::Value;

/// One step of a field path, as structured-merge-diff names them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A named field of an object (`f:name`).
    Field(String),
    /// An element of an associative list, by its key fields (`k:{"name":"a"}`); pairs are
    /// sorted by field name, values are compact JSON.
    Key(Vec<(String, String)>),
    /// An element of a set, by its value as compact JSON (`v:"a"`).
    Value(String),
    /// An element of an atomic list by position (`i:0`); only used to name conflicts.
    Index(usize),
}

impl PathElement {
    pub fn field(name: &str) -> Self {
        PathElement::Field(name.to_string())
    }
}

/// How server-side apply treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// An associative list keyed by these fields.
    Map(Vec<String>),
}

/// Where list semantics come from (built-in types or a CRD schema).
pub trait ListSemantics {
    /// The type of the list found at `path`.
    fn list_type(&self, path: &[PathElement]) -> ListType;
}

/// How strategic merge patch treats a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Elements are objects merged by this key.
    Merge(&'static str),
    /// Scalars merged as a set (`patchStrategy: merge` without a key).
    PrimitiveSet,
    /// Replaced as a whole.
    Replace,
}

/// Type context inside a built-in object: enough of the Kubernetes types to find list merge keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Root(RootKind),
    Meta,
    PodSpec,
    Container,
    Process,
    PodStatus,
    PodTemplate,
    WorkloadSpec,
    CronJobSpec,
    JobTemplate,
    ServiceSpec,
    NodeSpec,
    NodeStatus,
    Status,
    /// A list element or field with no lists we know of.
    Any,
}

/// Built-in kinds grouped by shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    Pod,
    /// Kinds with `spec.template` holding a pod template.
    Workload,
    CronJob,
    Service,
    Node,
    ServiceAccount,
    Other,
}

impl RootKind {
    pub fn of(kind: &str) -> Self {
        match kind {
            "Pod" => RootKind::Pod,
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "ReplicationController"
            | "PodTemplate" => RootKind::Workload,
            "CronJob" => RootKind::CronJob,
            "Service" => RootKind::Service,
            "Node" => RootKind::Node,
            "ServiceAccount" => RootKind::ServiceAccount,
            _ => RootKind::Other,
        }
    }
}

/// Both views of one list field of the built-in types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListInfo {
    pub strategy: Strategy,
    pub keys: &'static [&'static str],
    pub set: bool,
}

impl ListInfo {
    const fn merge(key: &'static str, keys: &'static [&'static str]) -> Self {
        ListInfo {
            strategy: Strategy::Merge(key),
            keys,
            set: false,
        }
    }

    const fn primitive_set() -> Self {
        ListInfo {
            strategy: Strategy::PrimitiveSet,
            keys: &[],
            set: true,
        }
    }

    const ATOMIC: ListInfo = ListInfo {
        strategy: Strategy::Replace,
        keys: &[],
        set: false,
    };

    pub fn list_type(&self) -> ListType {
        if self.set {
            ListType::Set
        } else if self.keys.is_empty() {
            ListType::Atomic
        } else {
            ListType::Map(self.keys.iter().map(|k| k.to_string()).collect())
        }
    }
}

/// The context of `field` inside `ctx` (for a list field: the context of its elements).
pub fn child_ctx(ctx: Ctx, field: &str) -> Ctx {
    use Ctx::*;
    match (ctx, field) {
        (Root(_) | PodTemplate | JobTemplate, "metadata") => Meta,
        (Root(RootKind::Pod), "spec") | (PodTemplate, "spec") => PodSpec,
        (Root(RootKind::Pod), "status") => PodStatus,
        (Root(RootKind::Workload), "spec") | (JobTemplate, "spec") => WorkloadSpec,
        (Root(RootKind::CronJob), "spec") => CronJobSpec,
        (Root(RootKind::Service), "spec") => ServiceSpec,
        (Root(RootKind::Node), "spec") => NodeSpec,
        (Root(RootKind::Node), "status") => NodeStatus,
        (Root(_), "status") => Status,
        (WorkloadSpec, "template") => PodTemplate,
        (CronJobSpec, "jobTemplate") => JobTemplate,
        (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => Container,
        // TaskTemplate shape used by BatchSandbox `shardTaskPatches`.
        (PodSpec, "process") => Process,
        _ => Any,
    }
}

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];

/// Merge information of the list `field` inside `ctx`; `None` for lists replaced as a whole.
pub fn list_info(ctx: Ctx, field: &str) -> Option<ListInfo> {
    use Ctx::*;
    let info = match (ctx, field) {
        (Meta, "finalizers") => ListInfo::primitive_set(),
        (Meta, "ownerReferences") => ListInfo::merge("uid", &["uid"]),
        (
            PodSpec,
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets"
            | "resourceClaims"
            | "schedulingGates",
        ) => ListInfo::merge("name", NAME),
        (PodSpec, "hostAliases") => ListInfo::merge("ip", IP),
        (PodSpec, "topologySpreadConstraints") => {
            ListInfo::merge("topologyKey", &["topologyKey", "whenUnsatisfiable"])
        }
        (Container, "ports") => ListInfo::merge("containerPort", &["containerPort", "protocol"]),
        (Container | Process, "env") => ListInfo::merge("name", NAME),
        (Container, "volumeMounts") => ListInfo::merge("mountPath", &["mountPath"]),
        (Container, "volumeDevices") => ListInfo::merge("devicePath", &["devicePath"]),
        (Container, "resizePolicy") => ListInfo::ATOMIC,
        (PodStatus, "podIPs" | "hostIPs") => ListInfo::merge("ip", IP),
        (PodStatus, "resourceClaimStatuses") => ListInfo::merge("name", NAME),
        (PodStatus | NodeStatus | Status, "conditions") => ListInfo::merge("type", TYPE),
        (NodeStatus, "addresses") => ListInfo::merge("type", TYPE),
        (ServiceSpec, "ports") => ListInfo::merge("port", &["port", "protocol"]),
        (NodeSpec, "podCIDRs") => ListInfo::primitive_set(),
        (Root(RootKind::ServiceAccount), "secrets") => ListInfo::merge("name", NAME),
        // Validating/MutatingWebhookConfiguration.
        (Root(RootKind::Other), "webhooks") => ListInfo::merge("name", NAME),
        _ => return None,
    };
    Some(info)
}

/// Walks `path` from `root`, returning the context that holds its last field.
fn ctx_before_last(root: Ctx, path: &[PathElement]) -> (Ctx, Option<&str>) {
    let mut ctx = root;
    let Some((last, init)) = path.split_last() else {
        return (ctx, None);
    };
    for pe in init {
        if let PathElement::Field(f) = pe {
            ctx = child_ctx(ctx, f);
        }
    }
    match last {
        PathElement::Field(f) => (ctx, Some(f.as_str())),
        _ => (ctx, None),
    }
}

/// List semantics of a built-in kind, from the merge-key table.
#[derive(Clone, Debug)]
pub struct BuiltinLists {
    root: Ctx,
}

impl BuiltinLists {
    pub fn new(kind: &str) -> Self {
        BuiltinLists {
            root: Ctx::Root(RootKind::of(kind)),
        }
    }
}

impl ListSemantics for BuiltinLists {
    fn list_type(&self, path: &[PathElement]) -> ListType {
        match ctx_before_last(self.root, path) {
            (ctx, Some(field)) => list_info(ctx, field)
                .map(|i| i.list_type())
                .unwrap_or(ListType::Atomic),
            _ => ListType::Atomic,
        }
    }
}

/// List semantics read from a CRD version's `openAPIV3Schema`.
#[derive(Clone, Debug)]
pub struct SchemaLists {
    schema: Value,
}

impl SchemaLists {
    pub fn new(openapi_v3_schema: &Value) -> Self {
        SchemaLists {
            schema: openapi_v3_schema.clone(),
        }
    }
}

/// The schema of a field or element one step below `node`; `None` when unknown.
fn schema_step<'a>(node: &'a Value, pe: &PathElement) -> Option<&'a Value> {
    match pe {
        PathElement::Field(f) => node
            .get("properties")
            .and_then(|p| p.get(f))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
        _ => node.get("items"),
    }
}

/// `metadata` of a custom resource follows the built-in ObjectMeta rules.
fn is_metadata_path(path: &[PathElement]) -> bool {
    matches!(path.first(), Some(PathElement::Field(f)) if f == "metadata")
}

impl ListSemantics for SchemaLists {
    fn list_type(&self, path: &[PathElement]) -> ListType {
        if is_metadata_path(path) {
            return BuiltinLists::new("").list_type(path);
        }
        let mut node = &self.schema;
        for pe in path {
            match schema_step(node, pe) {
                Some(next) => node = next,
                None => return ListType::Atomic,
            }
        }
        schema_list_type(node)
    }
}

fn schema_list_type(node: &Value) -> ListType {
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| {
                    ks.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListType::Atomic
            } else {
                ListType::Map(keys)
            }
        }
        _ => ListType::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::field(s)
    }

    fn key(name: &str) -> PathElement {
        PathElement::Key(vec![("name".into(), format!("{name:?}"))])
    }

    #[test]
    fn builtin_pod_template_lists() {
        let l = BuiltinLists::new("Deployment");
        let containers = [f("spec"), f("template"), f("spec"), f("containers")];
        assert_eq!(l.list_type(&containers), ListType::Map(vec!["name".into()]));
        let ports = [
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            key("a"),
            f("ports"),
        ];
        assert_eq!(
            l.list_type(&ports),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        let args = [
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            key("a"),
            f("args"),
        ];
        assert_eq!(l.list_type(&args), ListType::Atomic);
        assert_eq!(
            l.list_type(&[f("metadata"), f("finalizers")]),
            ListType::Set
        );
        assert_eq!(
            l.list_type(&[f("metadata"), f("ownerReferences")]),
            ListType::Map(vec!["uid".into()])
        );
    }

    #[test]
    fn builtin_cronjob_and_service() {
        let cj = BuiltinLists::new("CronJob");
        let p = [
            f("spec"),
            f("jobTemplate"),
            f("spec"),
            f("template"),
            f("spec"),
            f("volumes"),
        ];
        assert_eq!(cj.list_type(&p), ListType::Map(vec!["name".into()]));
        let svc = BuiltinLists::new("Service");
        assert_eq!(
            svc.list_type(&[f("spec"), f("ports")]),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(
            svc.list_type(&[f("status"), f("conditions")]),
            ListType::Map(vec!["type".into()])
        );
    }

    #[test]
    fn schema_lists_read_extensions() {
        let schema = json!({"type":"object","properties":{
            "spec":{"type":"object","properties":{
                "tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}},
                "items":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["id"],
                    "items":{"type":"object","properties":{"sub":{"type":"array","items":{"type":"string"}}}}},
                "free":{"type":"object","x-kubernetes-preserve-unknown-fields":true}
            }}
        }});
        let l = SchemaLists::new(&schema);
        assert_eq!(l.list_type(&[f("spec"), f("tags")]), ListType::Set);
        assert_eq!(
            l.list_type(&[f("spec"), f("items")]),
            ListType::Map(vec!["id".into()])
        );
        let sub = [
            f("spec"),
            f("items"),
            PathElement::Key(vec![("id".into(), "1".into())]),
            f("sub"),
        ];
        assert_eq!(l.list_type(&sub), ListType::Atomic);
        assert_eq!(
            l.list_type(&[f("spec"), f("free"), f("x")]),
            ListType::Atomic
        );
        assert_eq!(
            l.list_type(&[f("metadata"), f("finalizers")]),
            ListType::Set
        );
    }
}
