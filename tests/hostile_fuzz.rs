//! The fuzz targets of `fuzz/` (ledger annotations, label and field selectors) run on
//! stable for a bounded number of inputs: mutations of valid seeds plus random bytes.
//! `FUZZ_ITERATIONS` raises the count (the long variant); libFuzzer runs are in fuzz/README.md.

use opensandbox::fuzzing;

mod fuzz_driver;

use fuzz_driver::run;

#[test]
fn ledger_annotations_never_panic_and_round_trip() {
    run(
        "ledger",
        &[
            r#"{"pods":["a","b"]}"#,
            "{\"pods\":[\"a\"]}\0{\"pods\":[]}\0{\"pods\":[\"b\",\"a\"]}",
            r#"["10.0.0.1","10.0.0.2"]"#,
            r#"{"blacklist":["x"],"retryInterval":"5s","maxRetries":2,"restartCommand":["kill","1"]}"#,
            "",
            "{\"pods\":null}",
        ],
        fuzzing::ledger_annotations,
    );
}

#[test]
fn selectors_never_panic() {
    run(
        "selectors",
        &[
            "app=web,tier!=db",
            "env in (prod, staging),!canary",
            "a notin (x),b,c==d",
            "metadata.name=foo,status.phase!=Running",
            "example.com/key=value_1.2-3",
            "x in (a,,b)",
        ],
        fuzzing::selectors,
    );
}
