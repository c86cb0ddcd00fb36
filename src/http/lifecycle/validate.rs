//! Request validation: schema-level rules (422) and semantic rules (400), no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::models::CreateSandboxRequest;
use super::workload::{CreateSpec, RESERVED_PREFIX};
use crate::standalone::apiserver::validation::{is_qualified_name, is_valid_label_value};

/// Timeouts beyond this (about 100 years) cannot be represented as an expiry.
const MAX_REPRESENTABLE_TIMEOUT: u64 = 100 * 365 * 24 * 3600;
/// Most metadata entries a sandbox may carry.
pub const MAX_METADATA_ENTRIES: usize = 64;

/// Kubernetes label rules plus the reserved prefix (400 `SANDBOX::INVALID_METADATA_LABEL`).
pub fn check_label(key: &str, value: Option<&str>) -> Result<(), ApiError> {
    let err = |m: String| ApiError::bad_request("SANDBOX::INVALID_METADATA_LABEL", m);
    if key.starts_with(RESERVED_PREFIX) {
        return Err(err(format!(
            "Metadata key '{key}' uses the reserved prefix '{RESERVED_PREFIX}'."
        )));
    }
    is_qualified_name(key).map_err(|e| err(format!("Invalid metadata key '{key}': {e}")))?;
    if let Some(v) = value {
        is_valid_label_value(v)
            .map_err(|e| err(format!("Invalid metadata value for key '{key}': {e}")))?;
    }
    Ok(())
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if m.len() > MAX_METADATA_ENTRIES {
        return Err(ApiError::bad_request(
            "SANDBOX::INVALID_METADATA_LABEL",
            format!("At most {MAX_METADATA_ENTRIES} metadata entries are allowed."),
        ));
    }
    m.iter().try_for_each(|(k, v)| check_label(k, Some(v)))
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// Validates the timeout; `None` means no expiry.
fn check_timeout(
    t: Option<&serde_json::Number>,
    max: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    let Some(n) = t else { return Ok(None) };
    let secs = if let Some(u) = n.as_u64() {
        u
    } else if n.as_i64().is_some() {
        return Err(ApiError::validation("timeout: must be at least 60 seconds"));
    } else {
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= 60.0 => {
                return Err(ApiError::invalid_parameter(format!(
                    "Sandbox timeout {n}s is too large to represent safely."
                )));
            }
            _ => {
                return Err(ApiError::validation(
                    "timeout: must be an integer number of seconds",
                ));
            }
        }
    };
    if secs < 60 {
        return Err(ApiError::validation("timeout: must be at least 60 seconds"));
    }
    if let Some(max) = max
        && secs > max
    {
        return Err(ApiError::invalid_parameter(format!(
            "Sandbox timeout {secs}s exceeds configured maximum of {max}s."
        )));
    }
    if secs > MAX_REPRESENTABLE_TIMEOUT {
        return Err(ApiError::invalid_parameter(format!(
            "Sandbox timeout {secs}s is too large to represent safely."
        )));
    }
    Ok(Some(secs))
}

/// Checks a create request and turns it into a [`CreateSpec`]. Pool existence is checked by
/// the caller (it needs the cache).
pub fn create_spec(
    req: CreateSandboxRequest,
    id: String,
    namespace: String,
    max_timeout: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CreateSpec, ApiError> {
    let ext = req.extensions.clone().unwrap_or_default();
    let pool_ref = ext
        .get("poolRef")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    if let Some(v) = ext.get("access.renew.extend.seconds") {
        let ok = v
            .trim()
            .parse::<u32>()
            .is_ok_and(|n| (300..=86400).contains(&n));
        if !ok {
            return Err(ApiError::invalid_parameter(format!(
                "extensions.access.renew.extend.seconds must be an integer between 300 and 86400, got {v:?}"
            )));
        }
    }
    let cred_proxy = req.credential_proxy.as_ref().is_some_and(|c| c.enabled);
    if !blank(&req.template_id) {
        return Err(ApiError::invalid_parameter(
            "Templates are not supported by this server.",
        ));
    }
    if req.lifecycle.is_some() {
        return Err(ApiError::invalid_parameter(
            "lifecycle hooks are not supported by this server.",
        ));
    }
    if let Some(env) = &req.env {
        if env.contains_key("OPENSANDBOX_LIFECYCLE") {
            return Err(ApiError::validation(
                "env: OPENSANDBOX_LIFECYCLE is reserved",
            ));
        }
        if let Some(k) = env.keys().find(|k| k.starts_with("OPENSANDBOX_EGRESS_")) {
            return Err(ApiError::invalid_parameter(format!(
                "env key {k} is reserved for the egress sidecar."
            )));
        }
    }
    let image = req
        .image
        .as_ref()
        .map(|i| i.uri.trim().to_string())
        .filter(|u| !u.is_empty());
    if let Some(pool) = &pool_ref {
        if !blank(&req.snapshot_id) {
            return Err(ApiError::validation(
                "snapshotId cannot be combined with extensions.poolRef",
            ));
        }
        if cred_proxy {
            return Err(ApiError::validation(
                "credentialProxy cannot be combined with extensions.poolRef",
            ));
        }
        if req.platform.is_some() || req.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::invalid_parameter(
                "platform and volumes are not supported with extensions.poolRef",
            ));
        }
        if crate::standalone::apiserver::validation::is_dns1123_subdomain(pool).is_err() {
            return Err(ApiError::validation(format!(
                "extensions.poolRef: {pool:?} is not a valid pool name"
            )));
        }
    } else {
        if cred_proxy && req.network_policy.is_none() {
            return Err(ApiError::validation(
                "credentialProxy.enabled requires networkPolicy",
            ));
        }
        match (&image, blank(&req.snapshot_id)) {
            (Some(_), false) => {
                return Err(ApiError::validation(
                    "image and snapshotId are mutually exclusive",
                ));
            }
            (None, true) => {
                return Err(ApiError::validation(
                    "one of image.uri or snapshotId is required",
                ));
            }
            (None, false) | (Some(_), true) => {}
        }
        match &req.entrypoint {
            // A restore starts the snapshot's image with the SDK's default entrypoint.
            None if image.is_none() => {}
            None => return Err(ApiError::validation("entrypoint is required with image")),
            Some(e) if e.is_empty() => {
                return Err(ApiError::validation(
                    "entrypoint: must contain at least one item",
                ));
            }
            Some(e) if e[0].trim().is_empty() => {
                return Err(ApiError::bad_request(
                    "DOCKER::INVALID_ENTRYPOINT",
                    "Entrypoint must not be empty.",
                ));
            }
            Some(_) => {}
        }
        if req.resource_limits.is_none() {
            return Err(ApiError::validation("resourceLimits is required"));
        }
        if req.network_policy.is_some() {
            return Err(ApiError::invalid_parameter(
                "networkPolicy requires an egress image, which this server does not configure.",
            ));
        }
        if req.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::invalid_parameter(
                "volumes are not supported by this server.",
            ));
        }
    }
    if req.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
        return Err(ApiError::validation(
            "entrypoint: must contain at least one item",
        ));
    }
    if req.secure_access == Some(true) && pool_ref.is_some() {
        return Err(ApiError::invalid_parameter(
            "secureAccess cannot be combined with extensions.poolRef: pooled pods start before \
             the sandbox exists, so they cannot carry the sandbox's own access token.",
        ));
    }
    if req.image.as_ref().is_some_and(|i| i.auth.is_some()) {
        return Err(ApiError::invalid_parameter(
            "image.auth is not supported by this server.",
        ));
    }
    let platform = match req.platform {
        Some(mut p) => {
            p.os = p.os.trim().to_ascii_lowercase();
            p.arch = p.arch.trim().to_ascii_lowercase();
            if p.os != "linux" || !["amd64", "arm64"].contains(&p.arch.as_str()) {
                return Err(ApiError::invalid_parameter(format!(
                    "Unsupported platform {}/{}: supported are linux/amd64 and linux/arm64.",
                    p.os, p.arch
                )));
            }
            Some(p)
        }
        None => None,
    };
    if let Some(gpu) = req.resource_limits.as_ref().and_then(|l| l.get("gpu"))
        && gpu.parse::<u32>().is_err()
    {
        return Err(ApiError::invalid_parameter(format!(
            "resourceLimits.gpu must be a positive integer, got {gpu:?}"
        )));
    }
    let metadata = req.metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    let timeout = check_timeout(req.timeout.as_ref(), max_timeout)?;
    let expires_at = match timeout {
        Some(s) => Some(
            i64::try_from(s)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "Sandbox timeout {s}s is too large to represent safely."
                    ))
                })?,
        ),
        None => None,
    };
    Ok(CreateSpec {
        id,
        namespace,
        image: if pool_ref.is_some() { None } else { image },
        entrypoint: req.entrypoint.unwrap_or_default(),
        env: req
            .env
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        metadata,
        limits: req.resource_limits.unwrap_or_default(),
        requests: req.resource_requests,
        platform,
        expires_at,
        pool_ref,
        access_token: None,
        snapshot_id: req
            .snapshot_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        image_pull_secret: None,
    })
}

/// Parses the list `metadata` filter: the decoded value is itself `k=v&k=v`, each part
/// decoded once more (form semantics).
pub fn parse_metadata_filter(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for seg in raw.split('&').filter(|s| !s.is_empty()) {
        let Some((k, v)) = seg.split_once('=') else {
            return Err(ApiError::bad_request(
                "INVALID_METADATA_FORMAT",
                format!("Invalid metadata format: bad query field: {seg:?}"),
            ));
        };
        let dec = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        out.insert(dec(k), dec(v));
    }
    Ok(out)
}

/// FastAPI's boolean query values.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ApiError::validation(format!(
            "{name}: value is not a valid boolean"
        ))),
    }
}

/// Integer query/path value or 422.
pub fn parse_int<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.trim()
        .parse()
        .map_err(|_| ApiError::validation(format!("{name}: value is not a valid integer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::lifecycle::models::ImageSpec;

    fn req() -> CreateSandboxRequest {
        CreateSandboxRequest {
            image: Some(ImageSpec {
                uri: "python:3.11".into(),
                auth: None,
            }),
            entrypoint: Some(vec!["tail".into(), "-f".into(), "/dev/null".into()]),
            resource_limits: Some(BTreeMap::new()),
            ..Default::default()
        }
    }

    fn spec(r: CreateSandboxRequest, max: Option<u64>) -> Result<CreateSpec, ApiError> {
        create_spec(r, "id".into(), "ns".into(), max, Utc::now())
    }

    #[test]
    fn timeouts() {
        let mut r = req();
        r.timeout = Some(10.into());
        assert_eq!(spec(r.clone(), None).unwrap_err().status.as_u16(), 422);
        r.timeout = Some((-5).into());
        assert_eq!(spec(r.clone(), None).unwrap_err().status.as_u16(), 422);
        r.timeout = Some(3600.into());
        assert!(spec(r.clone(), Some(3600)).is_ok());
        r.timeout = Some(3601.into());
        let e = spec(r.clone(), Some(3600)).unwrap_err();
        assert!(e.message.contains("configured maximum of 3600s"), "{e}");
        r.timeout = serde_json::Number::from_f64(1e30);
        assert_eq!(
            spec(r.clone(), None).unwrap_err().code,
            "SANDBOX::INVALID_PARAMETER"
        );
        r.timeout = Some(u64::MAX.into());
        assert_eq!(spec(r, None).unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn labels_and_modes() {
        assert!(check_label("team", Some("infra")).is_ok());
        assert!(check_label("example.com/team", Some("")).is_ok());
        assert!(check_label("opensandbox.io/manual-cleanup", None).is_err());
        assert!(check_label(&"a".repeat(64), Some("x")).is_err());
        assert!(check_label("k", Some(&"v".repeat(64))).is_err());
        assert!(check_label("Bad_Prefix/x", Some("v")).is_err());
        let mut r = req();
        r.resource_limits = None;
        assert_eq!(spec(r, None).unwrap_err().status.as_u16(), 422);
        let pooled = CreateSandboxRequest {
            extensions: Some(BTreeMap::from([("poolRef".into(), "warm".into())])),
            ..Default::default()
        };
        assert_eq!(
            spec(pooled, None).unwrap().pool_ref.as_deref(),
            Some("warm")
        );
        let blank_pool = CreateSandboxRequest {
            extensions: Some(BTreeMap::from([("poolRef".into(), "  ".into())])),
            ..Default::default()
        };
        assert_eq!(spec(blank_pool, None).unwrap_err().status.as_u16(), 422);
    }

    #[test]
    fn metadata_filter_is_double_decoded() {
        let m = parse_metadata_filter("team=a%26b&x%20y=1%3D2%25&note=").unwrap();
        assert_eq!(m["team"], "a&b");
        assert_eq!(m["x y"], "1=2%");
        assert_eq!(m["note"], "");
        let e = parse_metadata_filter("team=infra&broken").unwrap_err();
        assert_eq!(e.code, "INVALID_METADATA_FORMAT");
        assert!(e.message.contains("bad query field"));
    }
}
