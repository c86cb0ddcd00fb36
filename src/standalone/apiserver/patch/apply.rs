//! Server-side apply and managedFields bookkeeping, after structured-merge-diff.
//!
//! Each manager entry owns a [`FieldSet`]. Apply merges the applied configuration into the
//! live object (maps recursively, associative lists by key, sets by value, atomic lists
//! replaced), reports conflicts with other owners of changed fields, and removes fields its
//! manager applied before but no longer applies unless someone else owns them. Other writes
//! ([`record_update`]) make the writer own what it changed and take those fields from others.

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, path_string};
use super::lists::{ListSemantics, ListType, PathElement};
use crate::standalone::apiserver::status::ApiError;

/// Parameters of one apply request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub manager: String,
    pub force: bool,
    /// apiVersion of the request (recorded in the manager entry).
    pub api_version: String,
    pub subresource: Option<String>,
    /// RFC 3339 time recorded in the manager entry.
    pub now: String,
}

/// A field owned by another manager that the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// Path as the real server prints it, e.g. `.data.a`.
    pub field: String,
    /// `Apply` or `Update`: Update owners are named with their apiVersion.
    pub operation: String,
    pub api_version: String,
    pub subresource: Option<String>,
}

impl Conflict {
    /// `"mgr"`, `"mgr" with subresource "status"`, `"mgr" using v1` (Update owners).
    fn owner(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is malformed (400).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The Status message, e.g.
    /// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.a`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// `details.causes` of the 409 Status.
    pub fn causes(&self) -> Vec<Value> {
        match self {
            ApplyError::Conflicts(cs) => cs
                .iter()
                .map(|c| {
                    json!({
                        "reason": "FieldManagerConflict",
                        "message": format!("conflict with {}", c.owner()),
                        "field": c.field,
                    })
                })
                .collect(),
            ApplyError::Invalid(_) => Vec::new(),
        }
    }

    /// The error as the server answers it: 409 Conflict with causes, or 400 BadRequest.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ApplyError::Conflicts(_) => {
                let mut e = ApiError::new(409, "Conflict", self.message());
                e.details = Some(json!({ "causes": self.causes() }));
                e
            }
            ApplyError::Invalid(m) => ApiError::new(400, "BadRequest", m.clone()),
        }
    }
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    let mut by_owner: Vec<(String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let owner = c.owner();
        match by_owner.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, fields)) => fields.push(&c.field),
            None => by_owner.push((owner, vec![&c.field])),
        }
    }
    let parts: Vec<String> = by_owner
        .iter()
        .map(|(owner, fields)| match fields.as_slice() {
            [one] => format!("conflict with {owner}: {one}"),
            many => format!("conflicts with {owner}:\n- {}", many.join("\n- ")),
        })
        .collect();
    let n = conflicts.len();
    let noun = if n == 1 { "conflict" } else { "conflicts" };
    format!("Apply failed with {n} {noun}: {}", parts.join("\n"))
}

/// Metadata fields that identify the object or belong to the server: never owned.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn tracked(path: &[PathElement], key: &str) -> bool {
    match path {
        [] => key != "apiVersion" && key != "kind",
        [PathElement::Field(m)] if m == "metadata" => !UNTRACKED_METADATA.contains(&key),
        _ => true,
    }
}

/// Which nodes of a value its field set names as members.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Members {
    /// An applied configuration: leaves and list elements only (maps and lists are implied).
    Leaves,
    /// Fields added by a write: every node, so an added map or list is owned as such.
    All,
}

/// The root and `metadata` identify the object and are never members themselves.
fn is_member_node(path: &[PathElement], value: &Value, members: Members) -> bool {
    if path.is_empty() || matches!(path, [PathElement::Field(m)] if m == "metadata") {
        return false;
    }
    match value {
        Value::Object(m) => members == Members::All || m.is_empty(),
        _ => true,
    }
}

/// Compact JSON of a value: the identity of set elements and key values.
fn canon(v: &Value) -> String {
    v.to_string()
}

/// The path element naming `item` in a list of the given type.
fn element_pe(item: &Value, list: &ListType, index: usize) -> PathElement {
    match list {
        ListType::Map(keys) => {
            let mut pairs: Vec<(String, String)> = keys
                .iter()
                .filter_map(|k| key_value(item, k).map(|v| (k.clone(), v)))
                .collect();
            pairs.sort();
            PathElement::Key(pairs)
        }
        ListType::Set => PathElement::Value(canon(item)),
        ListType::Atomic => PathElement::Index(index),
    }
}

/// A key field of a list element. `protocol` (container and Service ports) defaults to TCP
/// as the built-in schemas declare, so `{containerPort: 80}` and `{containerPort: 80,
/// protocol: TCP}` name the same element.
fn key_value(item: &Value, key: &str) -> Option<String> {
    match item.get(key) {
        Some(v) => Some(canon(v)),
        None if key == "protocol" => Some("\"TCP\"".to_string()),
        None => None,
    }
}

/// The field set of `value` found at `path`.
fn walk(
    value: &Value,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
    members: Members,
) -> FieldSet {
    let mut node = FieldSet {
        member: is_member_node(path, value, members),
        ..FieldSet::default()
    };
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if !tracked(path, k) || v.is_null() {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                let child = walk(v, path, lists, members);
                if !child.is_empty() {
                    node.children.insert(PathElement::Field(k.clone()), child);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let lt = lists.list_type(path);
            if lt == ListType::Atomic || items.is_empty() {
                return node;
            }
            // A merged list is not a leaf: its elements are.
            node.member &= members == Members::All;
            for (i, item) in items.iter().enumerate() {
                let pe = element_pe(item, &lt, i);
                path.push(pe.clone());
                let mut child = walk(item, path, lists, members);
                child.member = true;
                node.children.insert(pe, child);
                path.pop();
            }
        }
        _ => {}
    }
    node
}

/// The field set of an applied configuration, as server-side apply records it.
pub fn object_fields(obj: &Value, lists: &dyn ListSemantics) -> FieldSet {
    walk(obj, &mut Vec::new(), lists, Members::Leaves)
}

/// The field set of a whole object written by a non-apply operation.
fn written_fields(obj: &Value, lists: &dyn ListSemantics) -> FieldSet {
    walk(obj, &mut Vec::new(), lists, Members::All)
}

/// Paths changed (added or modified) and removed between two objects.
#[derive(Default)]
struct Diff {
    changed: FieldSet,
    removed: FieldSet,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

fn diff_objects(old: &Value, new: &Value, lists: &dyn ListSemantics) -> Diff {
    let mut d = Diff::default();
    diff(old, new, &mut Vec::new(), lists, &mut d);
    d
}

fn diff(
    old: &Value,
    new: &Value,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
    d: &mut Diff,
) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, nv) in n {
                if !tracked(path, k) {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                match o.get(k) {
                    Some(ov) => diff(ov, nv, path, lists, d),
                    None => add_subtree(&mut d.changed, nv, path, lists),
                }
                path.pop();
            }
            for (k, ov) in o {
                if tracked(path, k) && !n.contains_key(k) {
                    path.push(PathElement::Field(k.clone()));
                    add_subtree(&mut d.removed, ov, path, lists);
                    path.pop();
                }
            }
        }
        (Value::Array(o), Value::Array(n)) => match lists.list_type(path) {
            ListType::Atomic => {
                if o != n {
                    d.changed.insert(path);
                }
            }
            lt => diff_elements(o, n, &lt, path, lists, d),
        },
        _ => {
            if old != new {
                add_subtree(&mut d.changed, new, path, lists);
            }
        }
    }
}

/// Adds the fields of `value`, found at `path`, to `set`.
fn add_subtree(
    set: &mut FieldSet,
    value: &Value,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
) {
    let sub = walk(value, path, lists, Members::All);
    set.insert_at(path, &sub);
}

fn diff_elements(
    old: &[Value],
    new: &[Value],
    lt: &ListType,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
    d: &mut Diff,
) {
    let old_pes: Vec<PathElement> = old
        .iter()
        .enumerate()
        .map(|(i, e)| element_pe(e, lt, i))
        .collect();
    let mut new_pes = Vec::with_capacity(new.len());
    for (i, ne) in new.iter().enumerate() {
        let pe = element_pe(ne, lt, i);
        path.push(pe.clone());
        match old_pes.iter().position(|p| *p == pe) {
            Some(j) => diff(&old[j], ne, path, lists, d),
            None => {
                let mut sub = walk(ne, path, lists, Members::All);
                sub.member = true;
                d.changed.insert_at(path, &sub);
            }
        }
        path.pop();
        new_pes.push(pe);
    }
    for (oe, pe) in old.iter().zip(old_pes) {
        if !new_pes.contains(&pe) {
            path.push(pe);
            let mut sub = walk(oe, path, lists, Members::All);
            sub.member = true;
            d.removed.insert_at(path, &sub);
            path.pop();
        }
    }
}

/// Merges an applied configuration into the live object.
fn merge(
    live: &Value,
    applied: &Value,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => {
                        path.push(PathElement::Field(k.clone()));
                        let m = merge(lv, av, path, lists);
                        path.pop();
                        m
                    }
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match lists.list_type(path) {
            ListType::Atomic => applied.clone(),
            lt => Value::Array(merge_elements(l, a, &lt, path, lists)),
        },
        _ => applied.clone(),
    }
}

/// Live elements keep their places; applied elements merge into their live counterparts and
/// new ones are inserted after the applied element before them.
// Atomic lists never get here, so positional identities are not compared.
fn merge_elements(
    live: &[Value],
    applied: &[Value],
    lt: &ListType,
    path: &mut Vec<PathElement>,
    lists: &dyn ListSemantics,
) -> Vec<Value> {
    let mut out: Vec<(PathElement, Value)> = live
        .iter()
        .enumerate()
        .map(|(i, e)| (element_pe(e, lt, i), e.clone()))
        .collect();
    // New elements before the first known one go right before it; with none known, at the end.
    let mut next_slot = applied
        .iter()
        .enumerate()
        .find_map(|(i, ae)| {
            let pe = element_pe(ae, lt, i);
            out.iter().position(|(p, _)| *p == pe)
        })
        .unwrap_or(out.len());
    for (i, ae) in applied.iter().enumerate() {
        let pe = element_pe(ae, lt, i);
        match out.iter().position(|(p, _)| *p == pe) {
            Some(j) => {
                path.push(pe);
                out[j].1 = merge(&out[j].1, ae, path, lists);
                path.pop();
                next_slot = j + 1;
            }
            None => {
                out.insert(next_slot, (pe, ae.clone()));
                next_slot += 1;
            }
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

/// Removes from `value` the members of `remove` that nobody owns any part of.
fn prune(
    value: &mut Value,
    remove: &FieldSet,
    path: &mut Vec<PathElement>,
    owned: &FieldSet,
    lists: &dyn ListSemantics,
) {
    // A list element kept for another owner keeps the fields that identify it.
    let key_fields: Vec<PathElement> = match path.last() {
        Some(PathElement::Key(pairs)) => pairs
            .iter()
            .map(|(k, _)| PathElement::Field(k.clone()))
            .collect(),
        _ => Vec::new(),
    };
    for (pe, sub) in &remove.children {
        if key_fields.contains(pe) {
            continue;
        }
        path.push(pe.clone());
        let parent_len = path.len() - 1;
        let remove = if sub.member && !owned.has_member_below(path) {
            true
        } else if let Some(child) = child_mut(value, pe, &path[..parent_len], lists) {
            prune(child, sub, path, owned, lists);
            // A map or list emptied here goes too, unless someone owns it as such.
            is_empty_container(child) && !owned.contains(path) && !owned.has_member_below(path)
        } else {
            false
        };
        if remove {
            remove_child(value, pe, &path[..parent_len], lists);
        }
        path.pop();
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn child_index(
    items: &[Value],
    pe: &PathElement,
    list_path: &[PathElement],
    lists: &dyn ListSemantics,
) -> Option<usize> {
    let lt = lists.list_type(list_path);
    items
        .iter()
        .enumerate()
        .position(|(i, e)| element_pe(e, &lt, i) == *pe)
}

fn child_mut<'a>(
    value: &'a mut Value,
    pe: &PathElement,
    parent: &[PathElement],
    lists: &dyn ListSemantics,
) -> Option<&'a mut Value> {
    match (value, pe) {
        (Value::Object(m), PathElement::Field(f)) => m.get_mut(f),
        (Value::Array(items), _) => {
            let i = child_index(items, pe, parent, lists)?;
            items.get_mut(i)
        }
        _ => None,
    }
}

fn remove_child(
    value: &mut Value,
    pe: &PathElement,
    parent: &[PathElement],
    lists: &dyn ListSemantics,
) {
    match (value, pe) {
        (Value::Object(m), PathElement::Field(f)) => {
            m.remove(f);
        }
        (Value::Array(items), _) => {
            if let Some(i) = child_index(items, pe, parent, lists) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// One managedFields entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
    /// The stored JSON this entry was decoded from, while it is unchanged: written back as
    /// it is instead of encoding the set again. Whoever changes the entry clears it.
    encoded: Option<Value>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.same_content(other) && self.time == other.time
    }
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, api_version: &str, sub: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == sub
            && (operation == "Apply" || self.api_version == api_version)
    }

    fn decode(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            set: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&json!({}))).ok()?,
            encoded: None,
        })
    }

    fn into_value(self) -> Value {
        match self.encoded {
            Some(v) => v,
            None => self.encode(),
        }
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    /// Everything but the time.
    fn same_content(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.api_version == other.api_version
            && self.subresource == other.subresource
            && self.set == other.set
    }
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

fn decode_entries(raw: Option<&Value>) -> Vec<Entry> {
    raw.and_then(Value::as_array)
        .map(|es| es.iter().filter_map(Entry::decode).collect())
        .unwrap_or_default()
}

/// Like [`decode_entries`], keeping each entry's stored JSON for writing it back unchanged.
fn decode_owned(raw: Option<Value>) -> Vec<Entry> {
    let Some(Value::Array(items)) = raw else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|v| {
            let mut e = Entry::decode(&v)?;
            e.encoded = Some(v);
            Some(e)
        })
        .collect()
}

fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
}

/// Writes the entries in the real server's order (Apply before Update, then by time, manager).
fn store_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    cap_update_managers(&mut entries);
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let present = !entries.is_empty();
    let encoded = Value::Array(entries.into_iter().map(Entry::into_value).collect());
    set_managed_fields(obj, present.then_some(encoded));
}

/// The real server keeps at most this many Update entries.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest Update entries into one `ancient-changes` entry per apiVersion until at
/// most [`MAX_UPDATE_MANAGERS`] Update entries remain.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<Entry> = Vec::new();
    let mut rest: Vec<Entry> = Vec::new();
    for e in entries.drain(..) {
        if e.operation == "Update" {
            updaters.push(e);
        } else {
            rest.push(e);
        }
    }
    updaters.sort_by(|a, b| a.time.cmp(&b.time));
    // Each apiVersion's first (oldest) entry is left alone until a second one needs folding.
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut remaining = updaters.len();
    let mut i = 0;
    while i < updaters.len() && remaining > MAX_UPDATE_MANAGERS {
        let version = updaters[i].api_version.clone();
        let Some(&(_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
            first_of_version.push((version, i));
            i += 1;
            continue;
        };
        let current = updaters.remove(i);
        let bucket = &mut updaters[first];
        bucket.encoded = None;
        if bucket.manager != ANCIENT_CHANGES {
            bucket.manager = ANCIENT_CHANGES.into();
            bucket.subresource = None;
        }
        bucket.set = bucket.set.union(&current.set);
        bucket.time = current.time;
        remaining -= 1;
    }
    rest.extend(updaters);
    *entries = rest;
}

fn set_managed_fields(obj: &mut Value, raw: Option<Value>) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match raw {
        Some(v) => {
            let meta = root.entry("metadata").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert("managedFields".into(), v);
            }
        }
        None => {
            if let Some(Value::Object(m)) = root.get_mut("metadata") {
                m.remove("managedFields");
            }
        }
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    set_managed_fields(&mut out, None);
    out
}

/// An applied configuration with `null` members dropped: a field set to null is a field not
/// applied (and so removed if this manager alone owned it).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Server-owned metadata an apply body may not set.
fn strip_server_fields(applied: &mut Value) {
    if let Some(Value::Object(m)) = applied.get_mut("metadata") {
        for k in UNTRACKED_METADATA
            .iter()
            .filter(|k| **k != "name" && **k != "namespace")
        {
            m.remove(*k);
        }
    }
}

/// Server-side apply of `applied` onto `live` (`None`: the object is created). Returns the new
/// object with `metadata.managedFields` updated; an apply that changes nothing returns `live`
/// unchanged, managedFields times included.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
    lists: &dyn ListSemantics,
) -> Result<Value, ApplyError> {
    let applied = checked_applied(applied)?;
    let live_clean = live
        .map(without_managed_fields)
        .unwrap_or_else(|| json!({}));
    let mut merged = merge(&live_clean, &applied, &mut Vec::new(), lists);
    let old_entries = decode_entries(live.and_then(managed_fields));
    let mut entries = old_entries.clone();
    if live.is_some() && entries.is_empty() {
        entries.push(before_first_apply(&live_clean, opts, lists));
    }
    let sub = opts.subresource.as_deref();
    let is_me = |e: &Entry| e.is(&opts.manager, "Apply", &opts.api_version, sub);
    let applied_set = object_fields(&applied, lists);
    let changed = diff_objects(&live_clean, &merged, lists).changed;
    settle_conflicts(&mut entries, &is_me, &applied_set, &changed, opts.force)?;

    let previous = entries
        .iter()
        .find(|e| is_me(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let owned = entries
        .iter()
        .filter(|e| !is_me(e))
        .fold(applied_set.clone(), |acc, e| acc.union(&e.set));
    let abandoned = previous.difference(&owned);
    prune(&mut merged, &abandoned, &mut Vec::new(), &owned, lists);

    let mine = Entry {
        manager: opts.manager.clone(),
        operation: "Apply".into(),
        api_version: opts.api_version.clone(),
        time: Some(opts.now.clone()),
        subresource: opts.subresource.clone(),
        set: applied_set,
        encoded: None,
    };
    upsert(&mut entries, &is_me, mine);
    entries.retain(|e| !e.set.is_empty());

    if let Some(live) = live
        && merged == live_clean
        && same_entries(&entries, &old_entries)
    {
        return Ok(live.clone());
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// The applied configuration without nulls and server-owned metadata, or why it is refused.
fn checked_applied(applied: &Value) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "apply patch body must be an object".into(),
        ));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|mf| !mf.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut applied = without_nulls(applied);
    strip_server_fields(&mut applied);
    Ok(applied)
}

/// Fails on conflicts, or with `force` takes the conflicting fields from their owners.
fn settle_conflicts(
    entries: &mut [Entry],
    is_me: &dyn Fn(&Entry) -> bool,
    applied_set: &FieldSet,
    changed: &FieldSet,
    force: bool,
) -> Result<(), ApplyError> {
    let conflicts = find_conflicts(entries, is_me, applied_set, changed);
    if conflicts.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    let taken = applied_set.intersection(changed);
    for entry in entries.iter_mut().filter(|e| !is_me(e)) {
        entry.set = entry.set.difference(&taken);
        entry.encoded = None;
    }
    Ok(())
}

fn upsert(entries: &mut Vec<Entry>, is_me: &dyn Fn(&Entry) -> bool, mine: Entry) {
    match entries.iter_mut().find(|e| is_me(e)) {
        Some(e) => *e = mine,
        None => entries.push(mine),
    }
}

/// An object nobody manages yet is owned by `before-first-apply` for its first apply, so that
/// changing its values conflicts as on the real server.
fn before_first_apply(live: &Value, opts: &ApplyOptions, lists: &dyn ListSemantics) -> Entry {
    Entry {
        manager: "before-first-apply".into(),
        operation: "Update".into(),
        api_version: opts.api_version.clone(),
        time: Some(opts.now.clone()),
        subresource: None,
        set: written_fields(live, lists),
        encoded: None,
    }
}

fn find_conflicts(
    entries: &[Entry],
    is_me: &dyn Fn(&Entry) -> bool,
    applied_set: &FieldSet,
    changed: &FieldSet,
) -> Vec<Conflict> {
    let touched = applied_set.intersection(changed);
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| !is_me(e)) {
        for path in e.set.intersection(&touched).paths() {
            out.push(Conflict {
                manager: e.manager.clone(),
                field: path_string(&path),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
            });
        }
    }
    out
}

fn same_entries(a: &[Entry], b: &[Entry]) -> bool {
    let live_b: Vec<&Entry> = b.iter().filter(|e| !e.set.is_empty()).collect();
    a.len() == live_b.len() && a.iter().all(|x| live_b.iter().any(|y| x.same_content(y)))
}

/// A managedFields value of `[{}]` asks the server to drop all managers.
fn is_reset(raw: Option<&Value>) -> bool {
    matches!(raw.and_then(Value::as_array), Some(es) if es.len() == 1 && es[0] == json!({}))
}

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s managedFields.
///
/// The writer becomes the `Update` owner of every field it changed (of all fields on create)
/// and those fields leave every other manager's set. managedFields sent in the request are
/// taken as the starting point when non-empty (kubectl rewrites them with a JSON patch);
/// otherwise the stored ones are. A write that changes no field leaves managedFields as they
/// were.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
    lists: &dyn ListSemantics,
) {
    // managedFields are never tracked, so the objects are diffed as they are.
    let d = match old {
        Some(o) => diff_objects(o, new, lists),
        None => Diff {
            changed: written_fields(new, lists),
            removed: FieldSet::default(),
        },
    };
    let sent = take_managed_fields(new);
    let reset = is_reset(sent.as_ref());
    if d.is_empty() {
        let base = if reset {
            None
        } else if !decode_entries(sent.as_ref()).is_empty() {
            sent
        } else {
            old.and_then(managed_fields).cloned()
        };
        set_managed_fields(new, base);
        return;
    }
    let mut entries = if reset {
        Vec::new()
    } else {
        decode_owned(sent)
    };
    if entries.is_empty() && !reset {
        // Nothing usable was sent: the stored entries are the starting point.
        entries = decode_owned(old.and_then(managed_fields).cloned());
    }
    let is_me = |e: &Entry| e.is(manager, "Update", api_version, subresource);
    let mut mine_found = false;
    for e in entries.iter_mut() {
        if is_me(e) {
            mine_found = true;
            // Usually a writer changes fields it already owns: its set stays as it is and
            // only the time moves, so its stored JSON is kept with the new time.
            let grew = e.set.absorb(&d.changed);
            if grew | e.set.subtract(&d.removed) {
                e.encoded = None;
            } else if let Some(Value::Object(m)) = &mut e.encoded {
                m.insert("time".into(), json!(now));
            }
            e.time = Some(now.to_string());
        } else if e.set.subtract(&d.changed) | e.set.subtract(&d.removed) {
            e.encoded = None;
        }
    }
    if !mine_found {
        let mut set = d.changed;
        set.subtract(&d.removed);
        entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: Some(now.to_string()),
            subresource: subresource.map(str::to_string),
            set,
            encoded: None,
        });
    }
    store_entries(new, entries);
}
