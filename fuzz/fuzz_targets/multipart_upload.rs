#![no_main]

use std::sync::LazyLock;

/// One confined root for the whole run: `outer/root`, so anything written beside it is an
/// escape.
static DIRS: LazyLock<(tempfile::TempDir, std::path::PathBuf)> = LazyLock::new(|| {
    let outer = tempfile::tempdir().expect("temp dir");
    let root = outer.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    (outer, root)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (outer, root) = &*DIRS;
    opensandbox_executor::fuzzing::multipart_upload(data, root);
    let names: Vec<_> = std::fs::read_dir(outer.path())
        .expect("outer dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["root"], "an upload escaped the root");
});
