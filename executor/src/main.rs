use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use opensandbox_executor::execd::{self, state::ExecdConfig};
use opensandbox_executor::{server, shutdown, supervisor, tasks};

const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// In-sandbox agent: execd-compatible API (commands, sessions, files, proxy) and task API.
/// `opensandbox-executor [flags] -- <entrypoint...>` also starts and supervises the
/// sandbox's entrypoint.
#[derive(Parser, Debug)]
#[command(name = "opensandbox-executor", version)]
struct Args {
    /// execd API port.
    #[arg(long, default_value_t = 44772)]
    port: u16,
    /// Address the execd API binds (standalone mode gives every sandbox its own loopback IP).
    #[arg(long, env = "EXECD_BIND_HOST", default_value = "0.0.0.0")]
    bind_host: String,
    /// Shared secret required in header X-EXECD-ACCESS-TOKEN (empty: no check).
    #[arg(long, env = "EXECD_ACCESS_TOKEN", default_value = "")]
    access_token: String,
    /// Accepted for execd compatibility; code interpreting is not implemented.
    #[arg(long, env = "JUPYTER_HOST", default_value = "")]
    jupyter_host: String,
    /// Accepted for execd compatibility; ignored.
    #[arg(long, env = "JUPYTER_TOKEN", default_value = "")]
    jupyter_token: String,
    /// 0 = emergency … 7 = debug.
    #[arg(long, default_value_t = 6)]
    log_level: u8,
    /// Accepted for execd compatibility; streams close right after their terminal event.
    #[arg(long, env = "EXECD_API_GRACE_SHUTDOWN", default_value = "1s")]
    graceful_shutdown_timeout: String,
    /// Accepted for execd compatibility; ignored.
    #[arg(
        long,
        env = "EXECD_JUPYTER_IDLE_POLL_INTERVAL",
        default_value = "100ms"
    )]
    jupyter_idle_poll_interval: String,
    /// Task API listen address.
    #[arg(
        long,
        env = "TASK_EXECUTOR_LISTEN_ADDR",
        default_value = "0.0.0.0:5758"
    )]
    task_listen_addr: String,
    /// Task state directory.
    #[arg(
        long,
        env = "TASK_EXECUTOR_DATA_DIR",
        default_value = "/var/lib/sandbox/tasks"
    )]
    task_data_dir: PathBuf,
    /// Maximum size of each task's stdout.log / stderr.log.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    task_log_max_bytes: u64,
    /// `:`-separated directories the files API is confined to (empty: no confinement).
    /// Standalone mode sets the sandbox's own directory (and its private /tmp).
    #[arg(long, env = "EXECD_FS_ROOTS", default_value = "")]
    fs_roots: String,
    /// Do not serve the task API.
    #[arg(long, env = "TASK_EXECUTOR_DISABLED")]
    no_task_api: bool,
    /// Threads serving both APIs (requests are asynchronous; blocking file work runs on
    /// its own pool).
    #[arg(long, env = "EXECUTOR_HTTP_WORKERS", default_value_t = 1)]
    workers: usize,
    /// Do not act as init (zombie reaper) even when running as PID 1.
    #[arg(long)]
    no_init: bool,
    /// Entrypoint to start and supervise (after `--`).
    #[arg(last = true)]
    entrypoint: Vec<String>,
}

/// Go `flag` accepts `-port=1`; rewrite single-dash long flags to the double-dash form.
fn normalize_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in std::env::args().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
            out.push(a);
        } else if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

fn init_logging(level: u8) {
    let filter = match level {
        0..=3 => "error",
        4 => "warn",
        5 | 6 => "info,actix_server=warn",
        _ => "debug",
    };
    let builder = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_env("EXECD_LOG").unwrap_or_else(|_| filter.into()),
    );
    match std::env::var("EXECD_LOG_FILE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => builder
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .init(),
            Err(_) => builder.with_writer(std::io::stderr).init(),
        },
        None => builder.with_writer(std::io::stderr).init(),
    }
}

/// `EXECD_ENVS`, else `/opt/opensandbox/.env` when that directory is writable, else a file
/// in the temp dir. The file is created so `commands.set_env` can append to it.
fn envs_file(tmp: &std::path::Path) -> PathBuf {
    let path = std::env::var_os("EXECD_ENVS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let opt = PathBuf::from("/opt/opensandbox");
            if opt.is_dir() && nix::unistd::access(&opt, nix::unistd::AccessFlags::W_OK).is_ok() {
                opt.join(".env")
            } else {
                tmp.join(".env")
            }
        });
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    path
}

/// `opensandbox-executor install DEST`: copies this binary to DEST (mode 0755). The init
/// container of a sandbox pod uses it, since the executor image holds no shell to copy with.
fn install(dest: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().context("locating the executor binary")?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(&me, dest).with_context(|| format!("copying to {}", dest.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", dest.display()))?;
    println!("installed {}", dest.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("install") {
        let dest = raw
            .get(2)
            .context("usage: opensandbox-executor install DEST")?;
        return install(std::path::Path::new(dest));
    }
    let args = Args::parse_from(normalize_args());
    if supervisor::should_run_init(args.no_init)
        && let supervisor::Role::InitDone(code) =
            supervisor::fork_init().context("running as init")?
    {
        std::process::exit(code);
    }
    init_logging(args.log_level);
    let tmp_dir = std::env::temp_dir().join(format!("opensandbox-executor-{}", std::process::id()));
    // Created on first use (see `AppState::scratch_dir`): most executors never need it.
    let cfg = ExecdConfig {
        access_token: Some(args.access_token.clone()).filter(|t| !t.is_empty()),
        envs_file: envs_file(&tmp_dir),
        tmp_dir,
        fs_roots: opensandbox_executor::paths::Confinement::from_list(&args.fs_roots),
        upload_stall_timeout: std::time::Duration::from_secs(30),
    };
    let tmp = cfg.tmp_dir.clone();
    let result = actix_rt::System::new().block_on(run(args, cfg));
    let _ = std::fs::remove_dir_all(&tmp);
    std::process::exit(result?);
}

async fn run(args: Args, cfg: ExecdConfig) -> anyhow::Result<i32> {
    let mut requests = shutdown::Requests::listen().context("listening for SIGTERM")?;
    let envs_path = cfg.envs_file.clone();
    let listener = TcpListener::bind((args.bind_host.as_str(), args.port))
        .with_context(|| format!("binding {}:{}", args.bind_host, args.port))?;
    let tasks = if args.no_task_api {
        None
    } else {
        match open_tasks(&args) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "task API disabled");
                None
            }
        }
    };
    if let Some((manager, _)) = &tasks {
        reconcile_tasks(manager.clone());
        tracing::info!(addr = %args.task_listen_addr, "task API listening");
    }
    let state = execd::state::AppState::new(cfg);
    let apis = server::Apis {
        execd: (state, listener),
        tasks,
    };
    let server = server::serve(apis, args.workers).context("starting the HTTP server")?;
    let handle = server.handle();
    actix_rt::spawn(server);
    tracing::info!(port = args.port, "execd API listening");

    let code = supervise(&args.entrypoint, &envs_path, &mut requests).await?;
    handle.stop(false).await;
    Ok(code)
}

fn open_tasks(args: &Args) -> anyhow::Result<(Arc<tasks::manager::Manager>, TcpListener)> {
    let manager = Arc::new(
        tasks::manager::Manager::open(&args.task_data_dir, args.task_log_max_bytes)
            .with_context(|| format!("task data dir {}", args.task_data_dir.display()))?,
    );
    let listener = TcpListener::bind(&args.task_listen_addr)
        .with_context(|| format!("binding task API {}", args.task_listen_addr))?;
    Ok((manager, listener))
}

/// Reconciles tasks every [`RECONCILE_EVERY`] while there are any (an executor without tasks
/// stays asleep), on a blocking thread: a pass touches the tasks' files.
fn reconcile_tasks(manager: Arc<tasks::manager::Manager>) {
    actix_rt::spawn(async move {
        loop {
            manager.has_tasks().await;
            actix_rt::time::sleep(RECONCILE_EVERY).await;
            let m = manager.clone();
            if let Err(e) = actix_web::web::block(move || m.reconcile()).await {
                tracing::error!(error = %e, "task reconcile pass failed");
            }
        }
    });
}

/// Without an entrypoint: run until SIGTERM/SIGINT. With one: start it, forward SIGTERM or
/// SIGINT, and exit with its status (0 after a forwarded signal, as bootstrap.sh does).
async fn supervise(
    entrypoint: &[String],
    envs_path: &std::path::Path,
    requests: &mut shutdown::Requests,
) -> anyhow::Result<i32> {
    let Some((prog, rest)) = entrypoint.split_first() else {
        requests.next().await;
        return Ok(0);
    };
    let mut child = tokio::process::Command::new(prog)
        .args(rest)
        .env("EXECD_ENVS", envs_path)
        .env_remove(opensandbox_executor::process::ACCESS_TOKEN_ENV)
        .spawn()
        .with_context(|| format!("starting entrypoint {prog}"))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    tokio::select! {
        status = child.wait() => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
        }
        signal = requests.next() => {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(pid, signal);
            }
            let _ = child.wait().await;
            Ok(0)
        }
    }
}
