//! Loopback benchmark of opensandbox-executor: command start latency (to `init` and to the
//! first stdout line), stdout streaming throughput, upload and download throughput.
//!
//! `cargo run --release -p opensandbox-executor --bin executor-bench -- [--iterations N]
//!  [--stream-mib N] [--file-mib N] [--endpoint HOST:PORT]`
//! Without `--endpoint` it starts the `opensandbox-executor` binary next to itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;

#[derive(Parser, Debug)]
struct Args {
    /// Number of `echo` commands for the latency figures.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// MiB of stdout for the streaming test (100-byte lines).
    #[arg(long, default_value_t = 100)]
    stream_mib: usize,
    /// MiB uploaded and downloaded.
    #[arg(long, default_value_t = 256)]
    file_mib: usize,
    /// Use a running executor instead of starting one.
    #[arg(long)]
    endpoint: Option<String>,
}

/// Kills the executor it started and removes its scratch directory.
struct Guard {
    child: Option<Child>,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn start_executor() -> anyhow::Result<(String, Guard)> {
    let exe = std::env::current_exe()?
        .parent()
        .context("no parent dir")?
        .join("opensandbox-executor");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("executor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(&exe)
        .arg(format!("--port={port}"))
        .arg("--no-task-api")
        .env("EXECD_ENVS", dir.join(".env"))
        .env("EXECD_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let guard = Guard {
        child: Some(child),
        dir: Some(dir),
    };
    let until = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!("executor did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("127.0.0.1:{port}"), guard))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn latency(
    client: &awc::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let started = Instant::now();
        let mut resp = client
            .post(format!("{base}/command"))
            .send_json(&serde_json::json!({"command": "echo x"}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut buf = Vec::new();
        let (mut t_init, mut t_out) = (None, None);
        while let Some(chunk) = resp.next().await {
            buf.extend_from_slice(&chunk?);
            let now = started.elapsed().as_secs_f64() * 1000.0;
            let text = String::from_utf8_lossy(&buf);
            if t_init.is_none() && text.contains("\"type\":\"init\"") {
                t_init = Some(now);
            }
            if t_out.is_none() && text.contains("\"type\":\"stdout\"") {
                t_out = Some(now);
            }
        }
        init.push(t_init.context("no init event")?);
        first.push(t_out.context("no stdout event")?);
    }
    init.sort_by(f64::total_cmp);
    first.sort_by(f64::total_cmp);
    Ok((init, first))
}

async fn stream_throughput(
    client: &awc::Client,
    base: &str,
    mib: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let lines = mib * 1024 * 1024 / 100;
    let cmd = format!("yes {} | head -n {lines}", "a".repeat(99));
    let started = Instant::now();
    let mut resp = client
        .post(format!("{base}/command"))
        .send_json(&serde_json::json!({"command": cmd}))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut wire = 0usize;
    while let Some(chunk) = resp.next().await {
        wire += chunk?.len();
    }
    let secs = started.elapsed().as_secs_f64();
    let payload_mib = (lines * 100) as f64 / (1024.0 * 1024.0);
    Ok((payload_mib / secs, lines as f64 / secs, wire))
}

async fn upload_download(
    client: &awc::Client,
    base: &str,
    mib: usize,
) -> anyhow::Result<(f64, f64)> {
    let path = std::env::temp_dir().join(format!("executor-bench-file-{}", std::process::id()));
    let boundary = "benchboundary0123456789";
    let meta = serde_json::json!({"path": path, "mode": 644}).to_string();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let chunk = bytes::Bytes::from(vec![b'z'; 1024 * 1024]);
    let parts = std::iter::once(bytes::Bytes::from(head))
        .chain(std::iter::repeat_n(chunk, mib))
        .chain(std::iter::once(bytes::Bytes::from(tail)))
        .map(Ok::<_, std::io::Error>);
    let started = Instant::now();
    let mut resp = client
        .post(format!("{base}/files/upload"))
        .insert_header((
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        ))
        .send_stream(futures::stream::iter(parts))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = resp.body().await;
    if !resp.status().is_success() {
        bail!("upload failed: {}", resp.status());
    }
    let up = mib as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let url = format!(
        "{base}/files/download?path={}",
        percent_encoding::utf8_percent_encode(
            &path.to_string_lossy(),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut got = 0usize;
    while let Some(c) = resp.next().await {
        got += c?.len();
    }
    let down = mib as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if got != mib * 1024 * 1024 {
        bail!("download returned {got} bytes");
    }
    Ok((up, down))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (endpoint, _guard) = match &args.endpoint {
        Some(e) => (
            e.clone(),
            Guard {
                child: None,
                dir: None,
            },
        ),
        None => start_executor()?,
    };
    let base = format!("http://{endpoint}");
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(600)).finish();
        // Warm up connections and the shell lookup.
        latency(&client, &base, 5).await?;
        let (init, first) = latency(&client, &base, args.iterations).await?;
        let (mib_s, lines_s, wire) = stream_throughput(&client, &base, args.stream_mib).await?;
        let (up, down) = upload_download(&client, &base, args.file_mib).await?;
        let report = serde_json::json!({
            "iterations": args.iterations,
            "init_latency_ms": {"p50": percentile(&init, 0.5), "p99": percentile(&init, 0.99)},
            "first_stdout_latency_ms": {"p50": percentile(&first, 0.5), "p99": percentile(&first, 0.99)},
            "stdout_stream": {"payload_mib": args.stream_mib, "mib_per_s": mib_s, "lines_per_s": lines_s, "wire_bytes": wire},
            "upload_mib_per_s": up,
            "download_mib_per_s": down,
            "file_mib": args.file_mib,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!();
        println!("{:<34} {:>12} {:>12}", "metric", "p50", "p99");
        println!("{:<34} {:>10.2}ms {:>10.2}ms", "POST /command -> init", percentile(&init, 0.5), percentile(&init, 0.99));
        println!("{:<34} {:>10.2}ms {:>10.2}ms", "POST /command -> first stdout", percentile(&first, 0.5), percentile(&first, 0.99));
        println!("{:<34} {:>12}", "metric", "value");
        println!("{:<34} {:>8.1} MiB/s ({:.0} lines/s)", format!("stdout streaming ({} MiB)", args.stream_mib), mib_s, lines_s);
        println!("{:<34} {:>8.1} MiB/s", format!("upload ({} MiB)", args.file_mib), up);
        println!("{:<34} {:>8.1} MiB/s", format!("download ({} MiB)", args.file_mib), down);
        Ok(())
    })
}
