//! Helpers shared by the benchmark programs (included with `#[path]`).

#![allow(dead_code)]

use opensandbox::standalone::apiserver::ApiServer;

// The allocator the `opensandbox` binary uses, so the figures are the binary's (each
// program calls `opensandbox::allocator::tune()` first, as the binary does).
#[global_allocator]
static ALLOCATOR: opensandbox::allocator::Allocator = opensandbox::allocator::Allocator {};

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of `--name VALUE` on the command line, if given.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Whether the flag `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// An embedded API server with our CRDs installed.
pub async fn server_with_crds() -> anyhow::Result<ApiServer> {
    let s = ApiServer::new();
    let crds: Vec<serde_json::Value> = opensandbox::crd::all_crds()
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    s.install_crds(&crds)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(s)
}

/// Delays every write (create, update, patch, delete) the server answers by `ms` milliseconds,
/// as a slower real API server would; 0 adds nothing.
pub fn inject_write_latency(s: &ApiServer, ms: u64) {
    inject_write_latency_on(s, None, ms);
}

/// Like [`inject_write_latency`], for writes to one resource (and its subresources) only.
pub fn inject_write_latency_on(s: &ApiServer, resource: Option<&str>, ms: u64) {
    if ms == 0 {
        return;
    }
    for verb in ["create", "update", "patch", "delete"] {
        s.faults()
            .add(opensandbox::standalone::apiserver::FaultRule::latency(
                Some(verb),
                resource,
                std::time::Duration::from_millis(ms),
            ));
    }
}

/// User plus system CPU time this process has used so far, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
