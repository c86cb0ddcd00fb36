//! Fuzz entry points: each takes arbitrary bytes, must never panic, and checks the
//! round-trip properties its parser promises. `fuzz/` drives them with libFuzzer
//! (`cargo +nightly fuzz run <target>`); `tests/hostile_fuzz.rs` feeds them generated
//! inputs on stable in CI.

use std::collections::BTreeMap;

use crate::crd::keys;
use crate::crd::ledger::{self, Ledger, PodList, RestartConfig};
use crate::standalone::apiserver::validation::selector::{
    parse_field_selector, parse_label_selector,
};

/// The allocation ledger annotations, the endpoints annotation and the restart config.
pub fn ledger_annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut ann = BTreeMap::new();
    for (i, part) in text.split('\u{0}').enumerate() {
        let key = match i % 3 {
            0 => keys::ANNOTATION_ALLOC_STATUS,
            1 => keys::ANNOTATION_ALLOC_RELEASE,
            _ => keys::ANNOTATION_ALLOC_RELEASED,
        };
        ann.insert(key.to_string(), part.to_string());
    }
    if let Ok(l) = Ledger::from_annotations(Some(&ann)) {
        let held = l.held();
        assert!(held.iter().all(|p| l.status.pods.contains(p)));
        assert!(held.iter().all(|p| !l.release.pods.contains(p)));
        for list in [&l.status, &l.release, &l.released] {
            let again = BTreeMap::from([(
                keys::ANNOTATION_ALLOC_STATUS.to_string(),
                list.to_annotation(),
            )]);
            let back = PodList::from_annotations(Some(&again), keys::ANNOTATION_ALLOC_STATUS);
            assert_eq!(back.as_ref(), Ok(list), "pod list round trip");
        }
    }
    if let Ok(ips) = ledger::parse_endpoints(&text) {
        let back = ledger::parse_endpoints(&ledger::endpoints_annotation(&ips));
        assert_eq!(back.as_ref(), Ok(&ips), "endpoints round trip");
    }
    let _ = RestartConfig::parse(Some(&text));
}

/// Label and field selectors as `?labelSelector=` and `?fieldSelector=` carry them.
pub fn selectors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let labels: BTreeMap<String, String> = text
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(sel) = parse_label_selector(&text) {
        let _ = sel.matches(&labels);
        if sel.is_everything() {
            assert!(sel.matches(&labels));
        }
    }
    if let Ok(sel) = parse_field_selector(&text) {
        let _ = sel.matches(|k| labels.get(k).cloned());
        if sel.is_everything() {
            assert!(sel.matches(|_| None));
        }
    }
}
