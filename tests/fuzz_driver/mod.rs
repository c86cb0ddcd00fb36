//! A bounded, deterministic fuzz driver for the stable test runs of the `fuzz/` targets:
//! the seeds, then mutations of them and random bytes. `FUZZ_ITERATIONS` sets the count.
//! Shared by the root crate's and the executor's `hostile_fuzz` tests.

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Mutates a seed: byte flips, insertions of interesting bytes, cuts and repeats.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
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

pub fn run(name: &str, seeds: &[&str], target: impl Fn(&[u8])) {
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
