//! The chart's CRD files must be exactly what `opensandbox crdgen` prints.

use std::path::Path;

#[test]
fn chart_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/opensandbox-controller/crds");
    let crds = opensandbox::crd::all_crds();
    assert_eq!(crds.len(), 3);
    for crd in &crds {
        let path = dir.join(opensandbox::crd::crd_file_name(crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}); run `opensandbox crdgen --out-dir {}`",
                path.display(),
                dir.display()
            )
        });
        let generated = opensandbox::crd::crd_yaml(crd).unwrap();
        assert!(
            on_disk == generated,
            "{} drifted from the Rust types; regenerate it with `cargo run -- crdgen --out-dir {}`",
            path.display(),
            dir.display()
        );
    }
}
