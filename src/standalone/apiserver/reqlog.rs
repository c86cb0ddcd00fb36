//! A log of served requests with counts per verb and resource, for tests to assert on.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// One served request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub verb: String,
    /// Plural, with `/subresource` when there is one.
    pub resource: String,
    pub group: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub code: u16,
    pub user_agent: String,
    pub field_manager: Option<String>,
}

impl LoggedRequest {
    /// True for create, update, patch, delete and deletecollection.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// Bounded request log.
pub struct RequestLog {
    entries: Mutex<Vec<LoggedRequest>>,
    limit: usize,
}

impl RequestLog {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            limit,
        }
    }

    pub fn record(&self, entry: LoggedRequest) {
        let mut e = self.entries.lock();
        if e.len() >= self.limit {
            let drop = self.limit / 2;
            e.drain(..drop);
        }
        e.push(entry);
    }

    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.entries.lock().clone()
    }

    pub fn clear(&self) {
        self.entries.lock().clear();
    }

    /// Counts per `(verb, resource)`.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for e in self.entries.lock().iter() {
            *out.entry((e.verb.clone(), e.resource.clone())).or_insert(0) += 1;
        }
        out
    }

    /// Number of successful writes (2xx) matching `pred`.
    pub fn writes(&self, pred: impl Fn(&LoggedRequest) -> bool) -> usize {
        self.entries
            .lock()
            .iter()
            .filter(|e| e.is_write() && (200..300).contains(&e.code) && pred(e))
            .count()
    }
}
