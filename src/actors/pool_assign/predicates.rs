//! The predicates, each answering `Ok(())` or why the pool is rejected.

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::{display, parse_quantity};

/// What a predicate sees: the sandbox's template and labels, the pool's template and labels.
pub(super) struct Sides<'a> {
    pub bs_template: Option<&'a Value>,
    pub bs_labels: &'a BTreeMap<String, String>,
    pub pool_template: Option<&'a Value>,
    pub pool_labels: &'a BTreeMap<String, String>,
}

fn containers(template: &Value) -> impl Iterator<Item = &Value> {
    template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
}

fn images(template: &Value) -> Vec<&str> {
    containers(template)
        .filter_map(|c| c["image"].as_str())
        .filter(|i| !i.is_empty())
        .collect()
}

pub(super) fn image(s: &Sides<'_>) -> Result<(), String> {
    let Some(wanted) = s.bs_template.map(images).filter(|i| !i.is_empty()) else {
        return Ok(());
    };
    let offered = s.pool_template.map(images).unwrap_or_default();
    if offered.iter().any(|i| wanted.contains(i)) {
        Ok(())
    } else {
        Err(format!(
            "image: no container image in common (sandbox wants {wanted:?}, pool runs {offered:?})"
        ))
    }
}

/// Summed container requests per resource in nano-units; a resource with only a limit counts
/// the limit, as Kubernetes defaults the request to it.
fn requests(template: &Value) -> Result<BTreeMap<String, i128>, String> {
    let mut sums = BTreeMap::new();
    for c in containers(template) {
        let res = &c["resources"];
        let mut each: BTreeMap<&str, String> = BTreeMap::new();
        for field in ["limits", "requests"] {
            for (name, q) in res[field].as_object().into_iter().flatten() {
                if let Some(q) = quantity_str(q) {
                    each.insert(name, q);
                }
            }
        }
        for (name, q) in each {
            let v = parse_quantity(&q).map_err(|e| format!("resources.{name}: {e}"))?;
            *sums.entry(name.to_string()).or_insert(0) += v;
        }
    }
    Ok(sums)
}

/// Schemaless templates may carry `cpu: 1` as a JSON number.
fn quantity_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn resource(s: &Sides<'_>) -> Result<(), String> {
    let wanted = match s.bs_template.map(requests).transpose() {
        Ok(w) => w.unwrap_or_default(),
        Err(e) => return Err(format!("resource: sandbox template {e}")),
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let Some(pool_template) = s.pool_template else {
        return Err("resource: pool has no template".to_string());
    };
    let offered = requests(pool_template).map_err(|e| format!("resource: pool template {e}"))?;
    for (name, need) in &wanted {
        match offered.get(name) {
            None => return Err(format!("resource: pool requests no {name}")),
            Some(have) if have < need => {
                return Err(format!(
                    "resource: pool requests {name} {} < sandbox's {}",
                    display(*have),
                    display(*need)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub(super) fn node_selector(s: &Sides<'_>) -> Result<(), String> {
    let Some(bs) = s.bs_template else {
        return Ok(());
    };
    let mut labels = s.pool_labels.clone();
    if let Some(t) = s.pool_template {
        labels.extend(string_map(&t["spec"]["nodeSelector"]));
    }
    for (k, v) in string_map(&bs["spec"]["nodeSelector"]) {
        if labels.get(&k) != Some(&v) {
            return Err(format!("nodeselector: pool does not offer {k}={v}"));
        }
    }
    let terms = bs["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()
        .filter(|t| !t.is_empty());
    match terms {
        Some(terms) if !terms.iter().any(|t| term_matches(t, &labels)) => Err(
            "nodeselector: no required node affinity term matches the pool's labels".to_string(),
        ),
        _ => Ok(()),
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// All matchExpressions hold (matchFields name nodes, which a pool does not have: ignored).
fn term_matches(term: &Value, labels: &BTreeMap<String, String>) -> bool {
    term["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| expression_matches(e, labels))
}

/// One node selector requirement against a label map; an unknown operator never matches.
pub fn expression_matches(expr: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = expr["key"].as_str().unwrap_or_default();
    let values: Vec<&str> = expr["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let label = labels.get(key).map(String::as_str);
    let int_cmp = |want: std::cmp::Ordering| {
        let have = label.and_then(|l| l.parse::<i64>().ok());
        let bound = values.first().and_then(|v| v.parse::<i64>().ok());
        matches!((have, bound), (Some(h), Some(b)) if h.cmp(&b) == want)
    };
    match expr["operator"].as_str().unwrap_or_default() {
        "In" => label.is_some_and(|l| values.contains(&l)),
        "NotIn" => label.is_none_or(|l| !values.contains(&l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" => int_cmp(std::cmp::Ordering::Greater),
        "Lt" => int_cmp(std::cmp::Ordering::Less),
        _ => false,
    }
}

pub(super) fn label_selector(s: &Sides<'_>, keys: &[String]) -> Result<(), String> {
    for key in keys {
        let Some(want) = s.bs_labels.get(key) else {
            return Err(format!("labelselector: sandbox has no label {key}"));
        };
        if s.pool_labels.get(key) != Some(want) {
            return Err(format!("labelselector: pool label {key} is not {want:?}"));
        }
    }
    Ok(())
}
