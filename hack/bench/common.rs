//! Helpers shared by the benchmark programs (included with `#[path]`).

#![allow(dead_code)]

use opensandbox::standalone::apiserver::ApiServer;

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
