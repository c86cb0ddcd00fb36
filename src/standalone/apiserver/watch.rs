//! Watch filters, watch items and their newline-delimited JSON encoding.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::store::{Change, EventType, ObjRef, Stored};
use super::validation::selector::{FieldSelector, LabelSelector};

/// Which objects a watch or list selects.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    pub namespace: Option<String>,
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
    pub bookmarks: bool,
}

impl WatchFilter {
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str().unwrap_or("") != ns
        {
            return false;
        }
        if let Some(sel) = &self.labels
            && !sel.matches(&labels_of(obj))
        {
            return false;
        }
        if let Some(sel) = &self.fields
            && !sel.matches(|path| field_value(obj, path))
        {
            return false;
        }
        true
    }

    /// The event a change produces for this watcher, if any. An object that stops matching
    /// the selector is reported as DELETED (with its previous state), one that starts
    /// matching as ADDED, as the real server does.
    pub fn translate(&self, change: &Arc<Change>) -> Option<WatchItem> {
        let now = self.matches(&change.object.value);
        let before = change
            .prev
            .as_ref()
            .map(|p| self.matches(&p.value))
            .unwrap_or(false);
        let type_ = match change.type_ {
            EventType::Added | EventType::Deleted if now => change.type_,
            EventType::Added | EventType::Deleted => return None,
            EventType::Modified => match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => {
                    let prev = change.prev.as_ref()?;
                    let mut value = prev.value.clone();
                    value["metadata"]["resourceVersion"] = Value::String(change.rv.to_string());
                    return Some(WatchItem::Event {
                        type_: EventType::Deleted,
                        object: Stored::new(value),
                    });
                }
                (false, false) => return None,
            },
        };
        Some(WatchItem::Event {
            type_,
            object: change.object.clone(),
        })
    }
}

/// Labels of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of a dotted field path as field selectors compare it ("" when absent).
pub fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return Some(String::new()),
        };
    }
    Some(match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    })
}

/// One item of a watch stream.
#[derive(Clone, Debug)]
pub enum WatchItem {
    Event {
        type_: EventType,
        object: ObjRef,
    },
    Bookmark {
        rv: u64,
    },
    /// The bookmark that ends the initial events of a `sendInitialEvents` watch.
    InitialEventsEnd {
        rv: u64,
    },
    /// An in-stream error (a `Status`), after which the stream ends.
    Error(Value),
}

/// Encodes one event line: `{"type":"...","object":...}\n`.
pub fn encode_line(type_: &str, object_json: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(object_json.len() + 32);
    buf.put_slice(b"{\"type\":\"");
    buf.put_slice(type_.as_bytes());
    buf.put_slice(b"\",\"object\":");
    buf.put_slice(object_json);
    buf.put_slice(b"}\n");
    buf.freeze()
}

/// The object of a BOOKMARK event.
pub fn bookmark_object(api_version: &str, kind: &str, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "kind": kind, "apiVersion": api_version, "metadata": meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        let pod = json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}});
        assert_eq!(
            field_value(&pod, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(field_value(&pod, "spec.nodeName").as_deref(), Some(""));
    }

    #[test]
    fn line_framing() {
        assert_eq!(
            &encode_line("ADDED", b"{}")[..],
            b"{\"type\":\"ADDED\",\"object\":{}}\n"
        );
    }
}
