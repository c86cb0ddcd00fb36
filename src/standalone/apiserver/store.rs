//! The object store: one global resourceVersion, per-resource object maps, bounded event
//! history for watch replay, watcher fan-out and the owner index used by garbage collection.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;

use super::registry::ResourceKey;
use super::watch::{WatchFilter, WatchItem};

/// An object as stored: its JSON value and its serialised bytes, computed once per write.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    pub json: Bytes,
}

impl Stored {
    pub fn new(value: Value) -> Arc<Self> {
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Arc::new(Self { value, json })
    }

    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.value["metadata"]["uid"].as_str().unwrap_or("")
    }
}

pub type ObjRef = Arc<Stored>;

/// Namespace and name of an object ("" namespace for cluster-scoped kinds).
pub type ObjKey = (String, String);

/// A watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub type_: EventType,
    /// The new state (the last state for deletions).
    pub object: ObjRef,
    /// The state before the change (None on creation).
    pub prev: Option<ObjRef>,
}

/// What a write does to one object.
pub enum Mutation {
    /// Store this object (create or update); the store stamps its resourceVersion.
    Put(Value),
    /// Remove the object; the value is its final state.
    Delete(Value),
}

/// Why a commit did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitError {
    /// The object changed since it was read: compute again.
    Raced,
}

struct Watcher {
    id: u64,
    filter: WatchFilter,
    tx: mpsc::Sender<WatchItem>,
}

#[derive(Default)]
struct ResourceState {
    objects: BTreeMap<ObjKey, ObjRef>,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted_rv: u64,
    watchers: Vec<Watcher>,
}

struct Inner {
    rv: u64,
    resources: HashMap<ResourceKey, ResourceState>,
    /// owner uid -> dependents
    dependents: HashMap<String, HashSet<(ResourceKey, ObjKey)>>,
    history_limit: usize,
    next_watcher: u64,
}

/// What a new watch starts from.
pub enum WatchStart {
    /// Synthetic ADDED events for the current state (resourceVersion unset or "0").
    Current,
    /// Replay of the changes after this resourceVersion.
    After(u64),
}

/// A registered watch: the items to send first, then the live channel.
pub struct WatchRegistration {
    pub id: u64,
    pub initial: Vec<WatchItem>,
    pub rx: mpsc::Receiver<WatchItem>,
    /// The resourceVersion the initial items bring the watcher to.
    pub start_rv: u64,
}

/// The watch asked for history that is gone.
#[derive(Debug)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

/// Capacity of one watcher's channel; a watcher that falls this far behind is closed
/// (as the real server does) and resumes from its last resourceVersion.
const WATCH_CHANNEL_CAPACITY: usize = 16_384;

pub struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                resources: HashMap::new(),
                dependents: HashMap::new(),
                history_limit: history_limit.max(1),
                next_watcher: 1,
            }),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    pub fn get(&self, res: &ResourceKey, ns: &str, name: &str) -> Option<ObjRef> {
        let inner = self.inner.lock();
        inner
            .resources
            .get(res)?
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource (of one namespace, or all), in namespace/name order, with the
    /// resourceVersion the list is consistent with.
    pub fn list(&self, res: &ResourceKey, ns: Option<&str>) -> (Vec<ObjRef>, u64) {
        let inner = self.inner.lock();
        let items = match inner.resources.get(res) {
            None => Vec::new(),
            Some(state) => match ns {
                None => state.objects.values().cloned().collect(),
                Some(ns) => state
                    .objects
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, o)| o.clone())
                    .collect(),
            },
        };
        (items, inner.rv)
    }

    /// Number of objects of a resource.
    pub fn count(&self, res: &ResourceKey) -> usize {
        self.inner
            .lock()
            .resources
            .get(res)
            .map(|s| s.objects.len())
            .unwrap_or(0)
    }

    /// Dependents of an owner uid.
    pub fn dependents(&self, owner_uid: &str) -> Vec<(ResourceKey, ObjKey)> {
        self.inner
            .lock()
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies `mutation` if the object is still `expected` (by identity). Returns the change.
    pub fn commit(
        &self,
        res: &ResourceKey,
        key: &ObjKey,
        expected: Option<&ObjRef>,
        mutation: Mutation,
    ) -> Result<Arc<Change>, CommitError> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let limit = inner.history_limit;
        let state = inner.resources.entry(res.clone()).or_default();
        let current = state.objects.get(key).cloned();
        let same = match (&current, expected) {
            (None, None) => true,
            (Some(c), Some(e)) => Arc::ptr_eq(c, e),
            _ => false,
        };
        if !same {
            return Err(CommitError::Raced);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let (type_, mut value) = match mutation {
            Mutation::Put(v) => (
                if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                v,
            ),
            Mutation::Delete(v) => (EventType::Deleted, v),
        };
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let object = Stored::new(value);
        if let Some(prev) = &current {
            unindex_owners(&mut inner.dependents, res, key, prev);
        }
        match type_ {
            EventType::Deleted => {
                state.objects.remove(key);
            }
            _ => {
                index_owners(&mut inner.dependents, res, key, &object);
                state.objects.insert(key.clone(), object.clone());
            }
        }
        let change = Arc::new(Change {
            rv,
            type_,
            object,
            prev: current,
        });
        state.history.push_back(change.clone());
        while state.history.len() > limit {
            if let Some(old) = state.history.pop_front() {
                state.compacted_rv = old.rv;
            }
        }
        dispatch(state, &change);
        Ok(change)
    }

    /// Registers a watcher on `res`.
    pub fn watch(
        &self,
        res: &ResourceKey,
        filter: WatchFilter,
        start: WatchStart,
    ) -> Result<WatchRegistration, Expired> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let rv = inner.rv;
        let id = inner.next_watcher;
        inner.next_watcher += 1;
        let state = inner.resources.entry(res.clone()).or_default();
        let initial = match start {
            WatchStart::Current => state
                .objects
                .values()
                .filter(|o| filter.matches(&o.value))
                .map(|o| WatchItem::Event {
                    type_: EventType::Added,
                    object: o.clone(),
                })
                .collect(),
            WatchStart::After(from) => {
                if from < state.compacted_rv {
                    return Err(Expired {
                        requested: from,
                        oldest: state.compacted_rv,
                    });
                }
                state
                    .history
                    .iter()
                    .filter(|c| c.rv > from)
                    .filter_map(|c| filter.translate(c))
                    .collect()
            }
        };
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
        state.watchers.push(Watcher { id, filter, tx });
        Ok(WatchRegistration {
            id,
            initial,
            rx,
            start_rv: rv,
        })
    }

    /// Closes every open watch (fault injection: clients see their streams end).
    pub fn drop_watches(&self) {
        let mut inner = self.inner.lock();
        for state in inner.resources.values_mut() {
            state.watchers.clear();
        }
    }

    /// Sends a bookmark to every watcher that asked for them.
    pub fn bookmark_all(&self) {
        let mut inner = self.inner.lock();
        let rv = inner.rv;
        for state in inner.resources.values_mut() {
            state.watchers.retain(|w| {
                if !w.filter.bookmarks {
                    return !w.tx.is_closed();
                }
                !matches!(
                    w.tx.try_send(WatchItem::Bookmark { rv }),
                    Err(mpsc::error::TrySendError::Closed(_))
                )
            });
        }
    }

    /// Forgets all history: every watch resuming from an older resourceVersion gets 410.
    pub fn compact(&self) {
        let mut inner = self.inner.lock();
        let rv = inner.rv;
        for state in inner.resources.values_mut() {
            state.history.clear();
            state.compacted_rv = rv;
        }
    }

    pub fn unwatch(&self, res: &ResourceKey, id: u64) {
        let mut inner = self.inner.lock();
        if let Some(state) = inner.resources.get_mut(res) {
            state.watchers.retain(|w| w.id != id);
        }
    }

    /// Number of open watches (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.inner
            .lock()
            .resources
            .values()
            .map(|s| s.watchers.iter().filter(|w| !w.tx.is_closed()).count())
            .sum()
    }

    /// Every object of every resource (for persistence).
    pub fn snapshot(&self) -> (u64, Vec<(ResourceKey, ObjRef)>) {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        for (res, state) in &inner.resources {
            for o in state.objects.values() {
                out.push((res.clone(), o.clone()));
            }
        }
        (inner.rv, out)
    }

    /// Loads objects without events (restoring persisted state before serving).
    pub fn restore(&self, rv: u64, objects: Vec<(ResourceKey, Value)>) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.rv = inner.rv.max(rv);
        for (res, value) in objects {
            let object = Stored::new(value);
            let key = (object.namespace().to_string(), object.name().to_string());
            index_owners(&mut inner.dependents, &res, &key, &object);
            let state = inner.resources.entry(res.clone()).or_default();
            state.compacted_rv = inner.rv;
            state.objects.insert(key, object);
        }
    }
}

fn dispatch(state: &mut ResourceState, change: &Arc<Change>) {
    state.watchers.retain(|w| {
        let Some(item) = w.filter.translate(change) else {
            return !w.tx.is_closed();
        };
        match w.tx.try_send(item) {
            Ok(()) => true,
            // A watcher that cannot keep up is closed; it resumes from its last resourceVersion.
            Err(_) => false,
        }
    });
}

fn owner_uids(obj: &Stored) -> impl Iterator<Item = &str> {
    obj.value["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

fn index_owners(
    index: &mut HashMap<String, HashSet<(ResourceKey, ObjKey)>>,
    res: &ResourceKey,
    key: &ObjKey,
    obj: &Stored,
) {
    for uid in owner_uids(obj) {
        index
            .entry(uid.to_string())
            .or_default()
            .insert((res.clone(), key.clone()));
    }
}

fn unindex_owners(
    index: &mut HashMap<String, HashSet<(ResourceKey, ObjKey)>>,
    res: &ResourceKey,
    key: &ObjKey,
    obj: &Stored,
) {
    for uid in owner_uids(obj) {
        if let Some(set) = index.get_mut(uid) {
            set.remove(&(res.clone(), key.clone()));
            if set.is_empty() {
                index.remove(uid);
            }
        }
    }
}
