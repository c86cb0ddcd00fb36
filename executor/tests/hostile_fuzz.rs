//! The executor's fuzz targets of `fuzz/` (SSE line splitting and framing, multipart
//! uploads confined to a root) run on stable for a bounded number of inputs.
//! `FUZZ_ITERATIONS` raises the count; libFuzzer runs are described in fuzz/README.md.

use opensandbox_executor::fuzzing;

#[path = "../../tests/fuzz_driver/mod.rs"]
mod fuzz_driver;

use fuzz_driver::{Rng, iterations, mutate, run};

#[test]
fn sse_line_splitting_never_panics_and_ignores_chunking() {
    run(
        "sse",
        &[
            "hello\nworld\r\nx\ry",
            "\n\n\r\r\n",
            "no newline at all",
            "\u{1b}[31mred\u{1b}[0m\n\"quoted\"\n",
        ],
        fuzzing::sse_lines,
    );
}

#[test]
fn multipart_uploads_never_panic_nor_escape_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let part = |meta: &str, data: &str| {
        format!(
            "--fuzzb\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"metadata\"\r\n\r\n{meta}\r\n--fuzzb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n{data}\r\n--fuzzb--\r\n"
        )
    };
    let r = root.display().to_string();
    let seeds = [
        part(&format!("{{\"path\":\"{r}/a.txt\"}}"), "data"),
        part(&format!("{{\"path\":\"{r}/../escaped.txt\"}}"), "x"),
        part("{\"path\":\"/tmp/escaped-by-fuzz.txt\"}", "x"),
        part(&format!("{{\"path\":\"{r}/d/e/f.txt\",\"mode\":4095}}"), ""),
    ];
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    // Each upload builds a runtime: fewer iterations than the pure targets.
    let iterations = (iterations() / 10).max(200);
    let mut rng = Rng(7);
    for s in &seeds {
        fuzzing::multipart_upload(s.as_bytes(), &root);
    }
    for _ in 0..iterations {
        let input = {
            let seed = seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed.as_bytes())
        };
        fuzzing::multipart_upload(&input, &root);
    }
    let escaped: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "root")
        .collect();
    assert!(escaped.is_empty(), "written outside the root: {escaped:?}");
    assert!(!std::path::Path::new("/tmp/escaped-by-fuzz.txt").exists());
    println!(
        "FIGURES scenario=fuzz-multipart requests={} errors_seen=0 violations=0",
        iterations + seeds.len()
    );
}
