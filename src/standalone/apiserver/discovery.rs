//! Discovery documents: `/version`, aggregated discovery (`/api`, `/apis` as
//! `APIGroupDiscoveryList`) and the legacy `APIVersions` / `APIGroupList` / `APIResourceList`.
//!
//! kubectl and helm ask `/api` and `/apis` for the aggregated form first; the answer must carry the
//! exact aggregated Content-Type or it is parsed as the legacy form. A client that does not ask for
//! the aggregated form gets the legacy one: discovery is never answered with 406.

use serde_json::{Value, json};

use super::registry::{Registry, ResourceInfo};

/// Content-Type of an aggregated discovery answer in `apidiscovery.k8s.io/v2`.
pub const AGGREGATED_CONTENT_TYPE_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Content-Type of an aggregated discovery answer in `apidiscovery.k8s.io/v2beta1`.
pub const AGGREGATED_CONTENT_TYPE_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated discovery format a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregatedVersion {
    V2,
    V2beta1,
}

impl AggregatedVersion {
    /// The Content-Type header to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => AGGREGATED_CONTENT_TYPE_V2,
            AggregatedVersion::V2beta1 => AGGREGATED_CONTENT_TYPE_V2BETA1,
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }
}

/// The `/version` document. helm compares `gitVersion` with charts' `kubeVersion`, so it is semver.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": "v1.35.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-12-17T00:00:00Z",
        "goVersion": "go1.25.5",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// One media range of an Accept header: the type and its parameters (lower-cased names).
pub(crate) struct MediaRange<'a> {
    pub essence: &'a str,
    pub params: Vec<(String, &'a str)>,
}

impl MediaRange<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// Splits an Accept header into its media ranges, in the order the client listed them.
pub(crate) fn media_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let essence = parts.next()?.trim();
            if essence.is_empty() {
                return None;
            }
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().trim_matches('"')))
                })
                .collect();
            Some(MediaRange { essence, params })
        })
        .collect()
}

/// Which aggregated format an Accept header asks for, if any (first acceptable range wins).
/// None means: answer the legacy format with `application/json`.
pub fn wants_aggregated(accept: &str) -> Option<AggregatedVersion> {
    media_ranges(accept).iter().find_map(|r| {
        let json_like = r.essence.eq_ignore_ascii_case("application/json");
        if !json_like
            || r.param("g") != Some("apidiscovery.k8s.io")
            || r.param("as") != Some("APIGroupDiscoveryList")
        {
            return None;
        }
        match r.param("v") {
            Some("v2") => Some(AggregatedVersion::V2),
            Some("v2beta1") => Some(AggregatedVersion::V2beta1),
            _ => None,
        }
    })
}

/// Content-Type of every legacy discovery answer.
pub const LEGACY_CONTENT_TYPE: &str = "application/json";

/// The whole answer to `GET /api`: (Content-Type, body), aggregated when the client asks for it.
pub fn core_root(reg: &Registry, accept: &str, server_address: &str) -> (&'static str, Value) {
    match wants_aggregated(accept) {
        Some(ver) => (ver.content_type(), aggregated_core_as(reg, ver)),
        None => (LEGACY_CONTENT_TYPE, legacy_api_versions(server_address)),
    }
}

/// The whole answer to `GET /apis`: (Content-Type, body), aggregated when the client asks for it.
pub fn groups_root(reg: &Registry, accept: &str) -> (&'static str, Value) {
    match wants_aggregated(accept) {
        Some(ver) => (ver.content_type(), aggregated_groups_as(reg, ver)),
        None => (LEGACY_CONTENT_TYPE, api_group_list(reg)),
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregated discovery

/// `/api` in `apidiscovery.k8s.io/v2`.
pub fn aggregated_core(reg: &Registry) -> Value {
    aggregated_core_as(reg, AggregatedVersion::V2)
}

/// `/apis` in `apidiscovery.k8s.io/v2`.
pub fn aggregated_groups(reg: &Registry) -> Value {
    aggregated_groups_as(reg, AggregatedVersion::V2)
}

/// `/api` in the requested aggregated format.
pub fn aggregated_core_as(reg: &Registry, ver: AggregatedVersion) -> Value {
    let items: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| g.is_empty())
        .map(|(g, versions)| group_discovery(reg, g, versions))
        .collect();
    discovery_list(ver, items)
}

/// `/apis` in the requested aggregated format.
pub fn aggregated_groups_as(reg: &Registry, ver: AggregatedVersion) -> Value {
    let items: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_discovery(reg, g, versions))
        .collect();
    discovery_list(ver, items)
}

/// The v2beta1 form of an aggregated body built for v2 (the shapes are the same).
pub fn aggregated_v2beta1(mut v2_body: Value) -> Value {
    v2_body["apiVersion"] = json!(AggregatedVersion::V2beta1.api_version());
    v2_body
}

fn discovery_list(ver: AggregatedVersion, items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": ver.api_version(),
        "metadata": {},
        "items": items
    })
}

fn group_discovery(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let mut metadata = json!({ "creationTimestamp": null });
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = resources_of(reg, group, v)
                .iter()
                .map(|r| aggregated_resource(r))
                .collect();
            json!({ "version": v, "resources": resources, "freshness": "Current" })
        })
        .collect();
    json!({ "metadata": metadata, "versions": versions })
}

fn resources_of(reg: &Registry, group: &str, version: &str) -> Vec<std::sync::Arc<ResourceInfo>> {
    reg.all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut out = json!({
        "resource": r.plural,
        "responseKind": gvk(&r.group, &r.version, &r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": gvk(s.group, s.version, s.kind),
                "verbs": s.verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        out["subresources"] = json!(subs);
    }
    out
}

const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];
/// Connect subresources (`pods/exec`) are reached with GET or POST plus an upgrade.
const CONNECT_VERBS: &[&str] = &["create", "get"];

/// A served subresource and the kind it answers with.
struct Subresource<'a> {
    name: &'static str,
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    verbs: &'static [&'static str],
}

fn subresources(r: &ResourceInfo) -> Vec<Subresource<'_>> {
    let mut out = Vec::new();
    if r.has_status {
        out.push(Subresource {
            name: "status",
            group: &r.group,
            version: &r.version,
            kind: &r.kind,
            verbs: SUBRESOURCE_VERBS,
        });
    }
    if r.scale.is_some() {
        out.push(Subresource {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUBRESOURCE_VERBS,
        });
    }
    if r.group.is_empty() && r.plural == "pods" {
        out.push(Subresource {
            name: "exec",
            group: "",
            version: "v1",
            kind: "PodExecOptions",
            verbs: CONNECT_VERBS,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Legacy discovery

/// `/api` in the legacy `APIVersions` form.
pub fn legacy_api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }
        ]
    })
}

/// `/apis` in the legacy `APIGroupList` form (the core group is not listed there).
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| api_group(g, versions))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// An `APIGroup` entry (versions in preference order, the first preferred).
pub fn api_group(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({ "groupVersion": format!("{group}/{v}"), "version": v });
    let listed: Vec<Value> = versions.iter().map(gv).collect();
    let mut out = json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": listed,
    });
    if let Some(first) = versions.first() {
        out["preferredVersion"] = gv(first);
    }
    out
}

/// `/apis/{group}` for a served group, None otherwise.
pub fn api_group_of(reg: &Registry, group: &str) -> Option<Value> {
    reg.groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())
        .map(|(g, versions)| api_group(&g, &versions))
}

/// `/api/v1` or `/apis/{group}/{version}` (`APIResourceList`); None when nothing is served there.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = resources_of(reg, group, version);
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut entries = Vec::new();
    for r in &resources {
        entries.push(legacy_resource(r));
        entries.extend(subresources(r).iter().map(|s| legacy_subresource(r, s)));
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

fn legacy_resource(r: &ResourceInfo) -> Value {
    let mut out = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    out
}

fn legacy_subresource(r: &ResourceInfo, s: &Subresource<'_>) -> Value {
    let mut out = json!({
        "name": format!("{}/{}", r.plural, s.name),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": s.kind,
        "verbs": s.verbs,
    });
    // The real server names the group/version only when it differs from the parent's.
    if s.group != r.group || s.version != r.version {
        out["group"] = json!(s.group);
        out["version"] = json!(s.version);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let reg = Registry::with_builtins();
        let crds = serde_json::to_value(crate::crd::all_crds()).unwrap();
        for crd in crds.as_array().unwrap() {
            for info in super::super::registry::resources_from_crd(crd) {
                reg.insert(info);
            }
        }
        reg
    }

    fn find<'a>(list: &'a Value, group: &str, resource: &str) -> &'a Value {
        let item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"].as_str().unwrap_or("") == group)
            .unwrap_or_else(|| panic!("group {group:?} missing"));
        item["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == resource)
            .unwrap_or_else(|| panic!("{resource} missing"))
    }

    #[test]
    fn version_is_semver_1_35() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "35");
        assert_eq!(v["gitVersion"], "v1.35.0");
    }

    #[test]
    fn aggregated_groups_carry_our_crds() {
        let reg = registry();
        let body = aggregated_groups(&reg);
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2");
        let bsbx = find(&body, "sandbox.opensandbox.io", "batchsandboxes");
        assert_eq!(bsbx["shortNames"], json!(["bsbx"]));
        assert_eq!(bsbx["scope"], "Namespaced");
        assert_eq!(bsbx["singularResource"], "batchsandbox");
        assert_eq!(
            bsbx["responseKind"],
            json!({"group": "sandbox.opensandbox.io", "version": "v1alpha1", "kind": "BatchSandbox"})
        );
        assert_eq!(bsbx["subresources"][0]["subresource"], "status");
        assert_eq!(
            bsbx["subresources"][0]["responseKind"]["kind"],
            "BatchSandbox"
        );
        assert_eq!(
            bsbx["subresources"][0]["verbs"],
            json!(["get", "patch", "update"])
        );
        assert!(bsbx["verbs"].as_array().unwrap().contains(&json!("watch")));
        let pool = find(&body, "sandbox.opensandbox.io", "pools");
        assert_eq!(pool["singularResource"], "pool");
        assert!(pool.get("shortNames").is_none());
        // No core group in /apis, and every group has a name.
        for item in body["items"].as_array().unwrap() {
            assert!(!item["metadata"]["name"].as_str().unwrap().is_empty());
            assert_eq!(item["versions"][0]["freshness"], "Current");
        }
    }

    #[test]
    fn aggregated_core_has_pods_and_cluster_scoped_namespaces() {
        let reg = registry();
        let body = aggregated_core(&reg);
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let ns = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "namespaces")
            .unwrap();
        assert_eq!(ns["scope"], "Cluster");
        assert_eq!(
            aggregated_core_as(&reg, AggregatedVersion::V2beta1)["apiVersion"],
            "apidiscovery.k8s.io/v2beta1"
        );
        assert_eq!(
            aggregated_v2beta1(body)["apiVersion"],
            "apidiscovery.k8s.io/v2beta1"
        );
    }

    #[test]
    fn scale_subresource_is_listed() {
        let reg = registry();
        let crd = json!({
            "spec": {"group": "x.io", "scope": "Cluster",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": true,
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.r", "statusReplicasPath": ".status.r"}}}]}
        });
        for info in super::super::registry::resources_from_crd(&crd) {
            reg.insert(info);
        }
        let w = find(&aggregated_groups(&reg), "x.io", "widgets").clone();
        assert_eq!(w["scope"], "Cluster");
        assert_eq!(w["subresources"][1]["subresource"], "scale");
        assert_eq!(
            w["subresources"][1]["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        let list = api_resource_list(&reg, "x.io", "v1").unwrap();
        let names: Vec<_> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["widgets", "widgets/status", "widgets/scale"]);
        assert_eq!(list["resources"][2]["kind"], "Scale");
        assert_eq!(list["resources"][2]["group"], "autoscaling");
        assert_eq!(list["resources"][1]["kind"], "Widget");
        assert!(list["resources"][1].get("group").is_none());
    }

    #[test]
    fn accept_negotiation() {
        let agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(agg), Some(AggregatedVersion::V2));
        assert_eq!(
            wants_aggregated(
                "application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io"
            ),
            Some(AggregatedVersion::V2beta1)
        );
        assert_eq!(
            wants_aggregated(
                "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"
            ),
            Some(AggregatedVersion::V2)
        );
        assert_eq!(wants_aggregated("application/json, */*"), None);
        assert_eq!(wants_aggregated(""), None);
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"
            ),
            None
        );
        assert_eq!(
            AggregatedVersion::V2.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
    }

    #[test]
    fn root_answers_follow_accept() {
        let reg = registry();
        let agg =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        let (ct, body) = core_root(&reg, agg, "127.0.0.1:1");
        assert_eq!(ct, AGGREGATED_CONTENT_TYPE_V2);
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        let (ct, body) = core_root(&reg, "application/json, */*", "127.0.0.1:1");
        assert_eq!(ct, "application/json");
        assert_eq!(body["kind"], "APIVersions");
        let (ct, body) = groups_root(&reg, agg);
        assert_eq!(ct, AGGREGATED_CONTENT_TYPE_V2);
        assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2");
        let (ct, body) = groups_root(&reg, "*/*");
        assert_eq!(ct, "application/json");
        assert_eq!(body["kind"], "APIGroupList");
    }

    #[test]
    fn legacy_documents() {
        let reg = registry();
        let v = legacy_api_versions("127.0.0.1:6443");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "127.0.0.1:6443"
        );
        let groups = api_group_list(&reg);
        let sandbox = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "sandbox.opensandbox.io")
            .unwrap();
        assert_eq!(
            sandbox["preferredVersion"],
            json!({"groupVersion": "sandbox.opensandbox.io/v1alpha1", "version": "v1alpha1"})
        );
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["name"] != "")
        );
        let core = api_resource_list(&reg, "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        let pods_status = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/status")
            .unwrap();
        assert_eq!(pods_status["kind"], "Pod");
        assert_eq!(pods_status["singularName"], "");
        let pods_exec = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/exec")
            .unwrap();
        assert_eq!(pods_exec["kind"], "PodExecOptions");
        assert_eq!(pods_exec["verbs"], json!(["create", "get"]));
        let list = api_resource_list(&reg, "sandbox.opensandbox.io", "v1alpha1").unwrap();
        assert_eq!(list["groupVersion"], "sandbox.opensandbox.io/v1alpha1");
        let bsbx = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "batchsandboxes")
            .unwrap();
        assert_eq!(bsbx["shortNames"], json!(["bsbx"]));
        assert_eq!(bsbx["namespaced"], true);
        assert!(api_resource_list(&reg, "nope.io", "v1").is_none());
        assert_eq!(
            api_group_of(&reg, "apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(api_group_of(&reg, "").is_none());
    }
}
