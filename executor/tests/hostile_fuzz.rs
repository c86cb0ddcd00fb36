//! The executor's fuzz targets of `fuzz/` (SSE line splitting and framing, multipart
//! uploads confined to a root) run on stable for a bounded number of inputs.
//! `FUZZ_ITERATIONS` raises the count; libFuzzer runs are described in fuzz/README.md.

use opensandbox_executor::fuzzing;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Mutates a seed: byte flips, insertions of interesting bytes, cuts and repeats.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\0\"\\{}[],:=!()<>\n\r\t ~*-_./0123456789aZ\xff\xc3";
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            3 if !v.is_empty() && v.len() < 4096 => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (a, b) = (a.min(b), a.max(b));
                let piece = v[a..b].to_vec();
                v.splice(a..a, piece);
            }
            _ => {
                let n = rng.below(16);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

fn run(name: &str, seeds: &[&str], target: impl Fn(&[u8])) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    let n = iterations();
    for s in seeds {
        target(s.as_bytes());
    }
    for i in 0..n {
        let input = if i % 10 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            {
                let seed = seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed.as_bytes())
            }
        };
        target(&input);
    }
    println!(
        "FIGURES scenario=fuzz-{name} requests={} errors_seen=0 violations=0",
        n + seeds.len()
    );
}

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
