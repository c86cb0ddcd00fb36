//! Parsing a request path and query into what it addresses.

use std::collections::HashMap;

/// Where a resource request points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// The kinds of path the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    ApiVersions,
    ApiGroups,
    Group { group: String },
    GroupVersion { group: String, version: String },
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3 { group: String, version: String },
    Resource(ResourcePath),
    NotFound,
}

/// Splits a path into a route. Resource paths are validated against the registry later.
pub fn route(path: &str, is_namespaced_plural: impl Fn(&str, &str, &str) -> bool) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["readyz"] | ["livez"] => Route::Health,
        ["api"] => Route::ApiVersions,
        ["apis"] => Route::ApiGroups,
        ["apis", g] => Route::Group {
            group: g.to_string(),
        },
        ["api", v] => Route::GroupVersion {
            group: String::new(),
            version: v.to_string(),
        },
        ["apis", g, v] => Route::GroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", v] => Route::OpenApiV3 {
            group: String::new(),
            version: v.to_string(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3 {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["api", v, rest @ ..] => resource_route("", v, rest, &is_namespaced_plural),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest, &is_namespaced_plural),
        _ => Route::NotFound,
    }
}

fn resource_route(
    group: &str,
    version: &str,
    rest: &[&str],
    is_namespaced_plural: &impl Fn(&str, &str, &str) -> bool,
) -> Route {
    let p = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // `namespaces/{ns}/{plural}...` when {plural} is a namespaced resource; otherwise the
        // Namespace object itself (and its subresources).
        ["namespaces", ns, plural, tail @ ..] if is_namespaced_plural(group, version, plural) => {
            match tail {
                [] => p(plural, Some(ns), None, None),
                [name] => p(plural, Some(ns), Some(name), None),
                [name, sub] => p(plural, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            }
        }
        [plural] => p(plural, None, None, None),
        [plural, name] => p(plural, None, Some(name), None),
        [plural, name, sub] => p(plural, None, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

/// Query parameters (the last value wins for repeated keys).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_plural(_: &str, _: &str, plural: &str) -> bool {
        plural != "namespaces" && plural != "nodes" && plural != "status"
    }

    #[test]
    fn routes() {
        assert_eq!(route("/version", ns_plural), Route::Version);
        assert_eq!(
            route("/api/v1/namespaces/default/pods/p1/status", ns_plural),
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                plural: "pods".into(),
                namespace: Some("default".into()),
                name: Some("p1".into()),
                subresource: Some("status".into()),
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/default", ns_plural),
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("default".into()),
                subresource: None,
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/x/status", ns_plural),
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("x".into()),
                subresource: Some("status".into()),
            })
        );
        assert!(matches!(
            route("/apis/sandbox.opensandbox.io/v1alpha1/pools", ns_plural),
            Route::Resource(ResourcePath {
                namespace: None,
                name: None,
                ..
            })
        ));
        assert_eq!(route("/nope", ns_plural), Route::NotFound);
    }
}
