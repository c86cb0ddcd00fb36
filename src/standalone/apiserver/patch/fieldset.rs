//! Field sets as managedFields store them (`fieldsType: FieldsV1`): a tree of path elements
//! (`f:name`, `k:{...}`, `v:...`, `i:N`) where `.` marks a node that is itself a member.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::lists::PathElement;

/// A set of field paths, as a tree. Empty subtrees are ignored by equality.
#[derive(Clone, Debug, Default)]
pub struct FieldSet {
    /// The path ending at this node is in the set.
    pub member: bool,
    pub children: BTreeMap<PathElement, FieldSet>,
}

impl PartialEq for FieldSet {
    fn eq(&self, other: &Self) -> bool {
        self.member == other.member && non_empty(self).eq(non_empty(other))
    }
}

fn non_empty(s: &FieldSet) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
    s.children.iter().filter(|(_, c)| !c.is_empty())
}

impl Eq for FieldSet {}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// The node at `path`, created if missing.
    pub fn node_mut(&mut self, path: &[PathElement]) -> &mut FieldSet {
        path.iter().fold(self, |node, pe| {
            node.children.entry(pe.clone()).or_default()
        })
    }

    pub fn get(&self, path: &[PathElement]) -> Option<&FieldSet> {
        path.iter().try_fold(self, |node, pe| node.children.get(pe))
    }

    /// Adds `path` as a member.
    pub fn insert(&mut self, path: &[PathElement]) {
        self.node_mut(path).member = true;
    }

    /// Adds every member of `sub`, rooted at `path`.
    pub fn insert_at(&mut self, path: &[PathElement], sub: &FieldSet) {
        let node = self.node_mut(path);
        *node = node.union(sub);
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.get(path).is_some_and(|n| n.member)
    }

    /// Some path strictly below `path` is a member.
    pub fn has_member_below(&self, path: &[PathElement]) -> bool {
        self.get(path)
            .is_some_and(|n| n.children.values().any(|c| !c.is_empty()))
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.prune_empty();
        out
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let d = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// Adds every member of `other`, in place; true when something was added. Copies only
    /// the parts of `other` this set lacks.
    pub fn absorb(&mut self, other: &FieldSet) -> bool {
        let mut grew = other.member && !self.member;
        self.member |= other.member;
        for (pe, theirs) in &other.children {
            if theirs.is_empty() {
                continue;
            }
            match self.children.get_mut(pe) {
                Some(mine) => grew |= mine.absorb(theirs),
                None => {
                    self.children.insert(pe.clone(), theirs.clone());
                    grew = true;
                }
            }
        }
        grew
    }

    /// Removes every member of `other`, in place; true when something was removed. Cheap
    /// when the sets do not overlap (nothing is copied).
    pub fn subtract(&mut self, other: &FieldSet) -> bool {
        let mut changed = false;
        if other.member && self.member {
            self.member = false;
            changed = true;
        }
        if other.children.is_empty() || self.children.is_empty() {
            return changed;
        }
        self.children
            .retain(|pe, child| match other.children.get(pe) {
                Some(theirs) => {
                    changed |= child.subtract(theirs);
                    !child.is_empty()
                }
                None => true,
            });
        changed
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let i = child.intersection(theirs);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            !c.is_empty()
        });
    }

    /// Every member path, depth first in element order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON form.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if !child.is_empty() {
                m.insert(element_key(pe), child.to_fields_v1());
            }
        }
        Value::Object(m)
    }

    /// Parses the FieldsV1 JSON form (the root is never a member).
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let mut set = Self::parse_node(v)?;
        set.member = false;
        Ok(set)
    }

    fn parse_node(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = v else {
            return Err(format!("expected an object in fieldsV1, got {v}"));
        };
        let mut node = FieldSet {
            member: m.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, child) in m {
            if k == "." {
                node.member = true;
                continue;
            }
            node.children
                .insert(parse_element_key(k)?, Self::parse_node(child)?);
        }
        Ok(node)
    }
}

/// `f:name`, `k:{"name":"a"}`, `v:"x"`, `i:0`.
pub fn element_key(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(pairs) => {
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("k:{{{}}}", body.join(","))
        }
        PathElement::Value(v) => format!("v:{v}"),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

fn parse_element_key(k: &str) -> Result<PathElement, String> {
    let bad = || format!("invalid fieldsV1 key {k:?}");
    let (prefix, rest) = k.split_once(':').ok_or_else(bad)?;
    match prefix {
        "f" => Ok(PathElement::Field(rest.to_string())),
        "k" => {
            let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) else {
                return Err(bad());
            };
            let mut pairs: Vec<(String, String)> =
                m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
            pairs.sort();
            Ok(PathElement::Key(pairs))
        }
        "v" => serde_json::from_str::<Value>(rest)
            .map(|v| PathElement::Value(v.to_string()))
            .map_err(|_| bad()),
        "i" => rest.parse().map(PathElement::Index).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A path as conflict messages print it: `.spec.containers[name="a"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter()
        .map(|pe| match pe {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(pairs) => {
                let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", body.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::field(s)
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata":{"f:labels":{".":{},"f:app":{}},"f:finalizers":{".":{},"v:\"a\"":{}}},
            "f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{},
                "f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.contains(&[f("metadata"), f("labels"), f("app")]));
        assert!(set.contains(&[f("metadata"), f("labels")]));
        assert!(!set.contains(&[f("metadata")]));
        assert_eq!(set.to_fields_v1(), v);
        assert!(FieldSet::from_fields_v1(&json!({"x:y":{}})).is_err());
    }

    fn set_of(paths: &[Vec<u8>]) -> FieldSet {
        let mut s = FieldSet::default();
        for p in paths {
            let path: Vec<PathElement> = p.iter().map(|i| f(&format!("k{i}"))).collect();
            if !path.is_empty() {
                s.insert(&path);
            }
        }
        s
    }

    fn paths() -> impl proptest::strategy::Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(0u8..3, 0..4), 0..8)
    }

    proptest::proptest! {
        /// The in-place operations the write path uses agree with the copying ones, and
        /// report a change exactly when the set changed.
        #[test]
        fn in_place_operations_match_the_copying_ones(a in paths(), b in paths()) {
            let (a, b) = (set_of(&a), set_of(&b));
            let mut grown = a.clone();
            let grew = grown.absorb(&b);
            proptest::prop_assert_eq!(&grown, &a.union(&b));
            proptest::prop_assert_eq!(grew, grown != a);
            let mut shrunk = a.clone();
            let shrank = shrunk.subtract(&b);
            proptest::prop_assert_eq!(&shrunk, &a.difference(&b));
            proptest::prop_assert_eq!(shrank, shrunk != a);
        }
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&[f("data"), f("a")]);
        a.insert(&[f("data"), f("b")]);
        let mut b = FieldSet::default();
        b.insert(&[f("data"), f("b")]);
        b.insert(&[f("data"), f("c")]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("data"), f("b")]]);
        assert_eq!(a.difference(&b).paths(), vec![vec![f("data"), f("a")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.has_member_below(&[f("data")]));
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn conflict_paths_print_like_the_real_server() {
        let p = [
            f("spec"),
            f("containers"),
            PathElement::Key(vec![("name".into(), "\"a\"".into())]),
            f("image"),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"a\"].image");
        assert_eq!(path_string(&[f("data"), f("a")]), ".data.a");
    }
}
