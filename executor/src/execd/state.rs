//! Shared state of the execd API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::commands::CommandRegistry;
use super::pty::PtyRegistry;
use super::session::SessionRegistry;

#[derive(Debug, Clone)]
pub struct ExecdConfig {
    pub access_token: Option<String>,
    pub envs_file: PathBuf,
    pub tmp_dir: PathBuf,
    /// Where the files API may read and write (empty: anywhere).
    pub fs_roots: crate::paths::Confinement,
    /// An upload making no progress this long fails (incomplete or stalled bodies).
    pub upload_stall_timeout: std::time::Duration,
}

pub struct AppState {
    pub cfg: ExecdConfig,
    pub home: PathBuf,
    pub cwd: PathBuf,
    pub commands: CommandRegistry,
    pub sessions: SessionRegistry,
    pub ptys: PtyRegistry,
    scratch_created: AtomicBool,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(cfg: ExecdConfig) -> Shared {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Arc::new(AppState {
            cfg,
            home,
            cwd,
            commands: CommandRegistry::default(),
            sessions: SessionRegistry::default(),
            ptys: PtyRegistry::default(),
            scratch_created: AtomicBool::new(false),
        })
    }

    /// The scratch directory (`tmp_dir`: background command output, spooled uploads), created
    /// on first use: an executor that never needs it writes nothing at start. The error names
    /// the directory, as the caller's client sees it.
    pub fn scratch_dir(&self) -> std::io::Result<&Path> {
        if !self.scratch_created.load(Ordering::Acquire) {
            std::fs::create_dir_all(&self.cfg.tmp_dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "creating the scratch directory {}: {e}",
                        self.cfg.tmp_dir.display()
                    ),
                )
            })?;
            self.scratch_created.store(true, Ordering::Release);
        }
        Ok(&self.cfg.tmp_dir)
    }

    /// Resolves a caller path against the executor's env, home and cwd.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, crate::paths::PathError> {
        crate::paths::Resolver {
            home: &self.home,
            cwd: &self.cwd,
            lookup: &crate::paths::env_lookup,
        }
        .resolve(raw)
    }

    /// [`AppState::resolve`] for the files API: also refuses paths outside the sandbox's
    /// filesystem roots.
    pub fn resolve_file(&self, raw: &str) -> Result<PathBuf, crate::paths::PathError> {
        let path = self.resolve(raw)?;
        self.cfg.fs_roots.check(&path)?;
        Ok(path)
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
