//! `/metrics` and `/metrics/watch`.

use std::time::Duration;

use actix_web::HttpResponse;
use bytes::Bytes;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize)]
pub struct Metrics {
    pub cpu_count: f64,
    pub cpu_used_pct: f64,
    pub mem_total_mib: f64,
    pub mem_used_mib: f64,
    pub timestamp: i64,
}

/// (busy, total) jiffies from the aggregate `cpu` line of /proc/stat.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (total, used) MiB from /proc/meminfo (used = total - available).
pub fn parse_meminfo(text: &str) -> Option<(f64, f64)> {
    let field = |name: &str| -> Option<f64> {
        let l = text.lines().find(|l| l.starts_with(name))?;
        l.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:").or_else(|| field("MemFree:"))?;
    Some((total / 1024.0, (total - avail).max(0.0) / 1024.0))
}

pub async fn sample(window: Duration) -> ApiResult<Metrics> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let a = parse_stat(&read("/proc/stat"));
    tokio::time::sleep(window).await;
    let b = parse_stat(&read("/proc/stat"));
    let pct = match (a, b) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            (b1.saturating_sub(b0) as f64 / (t1 - t0) as f64 * 100.0).clamp(0.0, 100.0)
        }
        _ => 0.0,
    };
    let (total, used) = parse_meminfo(&read("/proc/meminfo"))
        .ok_or_else(|| ApiError::runtime("cannot read /proc/meminfo"))?;
    Ok(Metrics {
        cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        cpu_used_pct: pct,
        mem_total_mib: total,
        mem_used_mib: used,
        timestamp: crate::stream::now_ms(),
    })
}

pub async fn get() -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(sample(Duration::from_millis(200)).await?))
}

pub async fn watch() -> HttpResponse {
    let stream = futures::stream::unfold(true, |first| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let line = match sample(Duration::from_secs(1)).await {
            Ok(m) => serde_json::to_string(&m).unwrap_or_default(),
            Err(e) => serde_json::json!({"error": e.message}).to_string(),
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(line + "\n")), false))
    });
    super::routes::sse_headers(&mut HttpResponse::Ok()).streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_stat("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 1"),
            Some((20, 100))
        );
        let (t, u) =
            parse_meminfo("MemTotal: 2048 kB\nMemFree: 100 kB\nMemAvailable: 1024 kB\n").unwrap();
        assert_eq!((t, u), (2.0, 1.0));
    }
}
