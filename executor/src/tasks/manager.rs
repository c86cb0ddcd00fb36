//! Task manager: one active task, state on disk, reconcile loop, recovery.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;

use super::model::{Record, StartFailure, Task};
use super::runtime;
use super::state::{self, Phase};
use crate::execd::state::lock;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task name {0:?}")]
    InvalidName(String),
    #[error("task {0} already exists")]
    Duplicate(String),
    #[error("too many active tasks: at most 1 task may be pending or running")]
    Limit,
    #[error("container mode is not implemented yet - use process mode instead")]
    NoProcess,
    #[error("task not found: {0}")]
    NotFound(String),
    #[error("task store: {0}")]
    Io(#[from] std::io::Error),
}

struct Entry {
    record: Record,
    stopping: bool,
}

pub struct Manager {
    dir: PathBuf,
    max_log: u64,
    entries: Mutex<BTreeMap<String, Entry>>,
    stopping: std::sync::Arc<Mutex<HashSet<String>>>,
    /// Signalled when a task is created, so reconciling can sleep while there is none.
    created: tokio::sync::Notify,
}

/// A directory new files can be created in (what the data dir or its nearest existing
/// ancestor must be).
fn writable(dir: &Path) -> std::io::Result<()> {
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("{} is not writable: {e}", dir.display()),
        )
    })
}

/// The directory a missing `dir` would be created in. A relative path's last ancestor is "",
/// which stands for the working directory.
fn nearest_existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .skip(1)
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Manager {
    /// Recovers the tasks persisted in the data dir. A data dir that does not exist yet is
    /// created with the first task; until then it only has to be creatable (an executor
    /// starts with every sandbox pod, so nothing is written at start).
    pub fn open(dir: &Path, max_log: u64) -> Result<Manager, TaskError> {
        let m = Manager {
            dir: dir.to_path_buf(),
            max_log,
            entries: Mutex::new(BTreeMap::new()),
            stopping: Default::default(),
            created: tokio::sync::Notify::new(),
        };
        match std::fs::metadata(dir) {
            Ok(md) if md.is_dir() => {
                writable(dir)?;
                m.recover()?;
            }
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", dir.display()),
                )
                .into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                writable(nearest_existing_ancestor(dir))?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(m)
    }

    /// Resolves once there is a task (at once if there is one already).
    pub async fn has_tasks(&self) {
        loop {
            let notified = self.created.notified();
            if !lock(&self.entries).is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn task_dir(&self, name: &str) -> Result<PathBuf, TaskError> {
        if !state::valid_name(name) {
            return Err(TaskError::InvalidName(name.to_string()));
        }
        Ok(self.dir.join(name))
    }

    fn persist(&self, rec: &Record) -> Result<(), TaskError> {
        let dir = self.task_dir(&rec.task.name)?;
        let bytes = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("task.json"), &bytes)?;
        Ok(())
    }

    /// A task persisted as active whose process is gone without an exit code is dropped,
    /// so the controller's next `setTasks` runs it again.
    fn recover(&self) -> Result<(), TaskError> {
        let mut entries = lock(&self.entries);
        for de in std::fs::read_dir(&self.dir)?.filter_map(Result::ok) {
            let path = de.path();
            let Ok(bytes) = std::fs::read(path.join("task.json")) else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else {
                tracing::warn!(dir = %path.display(), "ignoring corrupt task record");
                continue;
            };
            if !state::valid_name(&rec.task.name)
                || path.file_name() != Some(rec.task.name.as_ref())
            {
                continue;
            }
            let obs = runtime::observe(&path);
            let lost = rec.start_failure.is_none() && obs.exit.is_none() && !obs.alive;
            if lost && rec.task.deletion_timestamp.is_none() {
                tracing::info!(task = %rec.task.name, "dropping task lost across restart");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            entries.insert(
                rec.task.name.clone(),
                Entry {
                    record: rec,
                    stopping: false,
                },
            );
        }
        Ok(())
    }

    fn phase_of(&self, rec: &Record) -> Phase {
        if let Some(f) = &rec.start_failure {
            return Phase::StartFailed {
                code: f.exit_code,
                reason: f.reason.clone(),
                message: f.message.clone(),
                at: f.at,
            };
        }
        let obs = runtime::observe(&self.dir.join(&rec.task.name));
        let timeout = rec.task.process.as_ref().and_then(|p| p.timeout_seconds);
        state::phase(&obs, timeout, rec.timed_out, Utc::now())
    }

    fn view(&self, rec: &Record) -> (Task, bool) {
        let phase = self.phase_of(rec);
        let mut t = rec.task.clone();
        let timeout = t.process.as_ref().and_then(|p| p.timeout_seconds);
        let mut status = state::status(&phase, timeout, Utc::now());
        // A failed process says why on stderr: its tail goes into the message.
        if let Some(term) = status.terminated.as_mut()
            && term.exit_code != 0
            && matches!(phase, Phase::Exited { .. } | Phase::Crashed { .. })
            && let Some(tail) = runtime::stderr_tail(&self.dir.join(&rec.task.name), 512)
        {
            term.message = Some(match term.message.take() {
                Some(m) => format!("{m}; stderr: {tail}"),
                None => format!("stderr: {tail}"),
            });
        }
        t.process_status = Some(status);
        let active = rec.task.deletion_timestamp.is_none() && phase.is_active();
        (t, active)
    }

    /// All tasks, the active one first, then in creation order.
    pub fn list(&self) -> Vec<Task> {
        let entries = lock(&self.entries);
        let mut v: Vec<_> = entries
            .values()
            .map(|e| {
                let (t, active) = self.view(&e.record);
                (state::order_key(active, e.record.created_at, &t.name), t)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, t)| t).collect()
    }

    pub fn get(&self, name: &str) -> Result<Task, TaskError> {
        let entries = lock(&self.entries);
        let e = entries
            .get(name)
            .ok_or_else(|| TaskError::NotFound(name.to_string()))?;
        Ok(self.view(&e.record).0)
    }

    fn create_locked(
        &self,
        entries: &mut BTreeMap<String, Entry>,
        task: Task,
    ) -> Result<Task, TaskError> {
        let dir = self.task_dir(&task.name)?;
        if entries.contains_key(&task.name) {
            return Err(TaskError::Duplicate(task.name));
        }
        let active = entries
            .values()
            .filter(|e| {
                e.record.task.deletion_timestamp.is_none() && self.phase_of(&e.record).is_active()
            })
            .count();
        if active >= 1 {
            return Err(TaskError::Limit);
        }
        let Some(process) = task.process.clone() else {
            return Err(TaskError::NoProcess);
        };
        let rec = Record {
            task: Task {
                name: task.name.clone(),
                deletion_timestamp: None,
                process: Some(process.clone()),
                pod_template_spec: task.pod_template_spec.clone(),
                process_status: None,
                pod_status: None,
            },
            created_at: Utc::now(),
            timed_out: false,
            start_failure: None,
        };
        let mut rec = rec;
        std::fs::create_dir_all(&dir)?;
        match runtime::preflight(&process) {
            Ok(()) => {
                self.persist(&rec)?;
                if let Err(e) = runtime::start(&dir, &process, self.max_log) {
                    rec.start_failure = Some(StartFailure {
                        exit_code: 1,
                        reason: "StartError".into(),
                        message: format!("failed to start the task: {e}"),
                        at: Utc::now(),
                    });
                }
            }
            Err(u) => {
                rec.start_failure = Some(StartFailure {
                    exit_code: u.exit_code,
                    reason: u.reason.into(),
                    message: u.message,
                    at: Utc::now(),
                });
            }
        }
        if rec.start_failure.is_some() {
            self.persist(&rec)?;
        }
        let view = self.view(&rec).0;
        entries.insert(
            rec.task.name.clone(),
            Entry {
                record: rec,
                stopping: false,
            },
        );
        self.created.notify_one();
        Ok(view)
    }

    pub fn create(&self, task: Task) -> Result<Task, TaskError> {
        let mut entries = lock(&self.entries);
        self.create_locked(&mut entries, task)
    }

    /// Soft delete: the reconcile loop stops the process and then removes the task.
    pub fn delete(&self, name: &str) -> Result<(), TaskError> {
        let mut entries = lock(&self.entries);
        if let Some(e) = entries.get_mut(name)
            && e.record.task.deletion_timestamp.is_none()
        {
            e.record.task.deletion_timestamp = Some(Utc::now());
            let rec = e.record.clone();
            self.persist(&rec)?;
        }
        Ok(())
    }

    /// Desired state: absent tasks are soft-deleted, new names created, existing kept.
    pub fn sync(&self, desired: Vec<Task>) -> Result<Vec<Task>, TaskError> {
        let desired: Vec<Task> = desired.into_iter().filter(|t| !t.name.is_empty()).collect();
        {
            let mut entries = lock(&self.entries);
            let wanted: HashSet<&str> = desired.iter().map(|t| t.name.as_str()).collect();
            let now = Utc::now();
            let mut changed = Vec::new();
            for (name, e) in entries.iter_mut() {
                if !wanted.contains(name.as_str()) && e.record.task.deletion_timestamp.is_none() {
                    e.record.task.deletion_timestamp = Some(now);
                    changed.push(e.record.clone());
                }
            }
            for rec in changed {
                self.persist(&rec)?;
            }
            for t in desired {
                if !entries.contains_key(&t.name) {
                    self.create_locked(&mut entries, t)?;
                }
            }
        }
        Ok(self.list())
    }

    /// One reconcile pass: stop deleted or timed-out tasks, drop finished deleted ones,
    /// bound the log files.
    pub fn reconcile(&self) {
        let mut entries = lock(&self.entries);
        let mut remove = Vec::new();
        for (name, e) in entries.iter_mut() {
            let dir = self.dir.join(name);
            runtime::bound_logs(&dir, self.max_log);
            let phase = self.phase_of(&e.record);
            if matches!(phase, Phase::Timeout { .. }) && !e.record.timed_out {
                e.record.timed_out = true;
                if let Err(err) = self.persist(&e.record) {
                    tracing::warn!(task = %name, error = %err, "persist failed");
                }
            }
            let deleting = e.record.task.deletion_timestamp.is_some();
            let needs_stop = (deleting && !phase.is_terminal() && phase != Phase::Pending)
                || (matches!(phase, Phase::Timeout { .. }) && runtime::observe(&dir).alive);
            if needs_stop && !e.stopping {
                e.stopping = true;
                let stopping = self.stopping.clone();
                lock(&stopping).insert(name.clone());
                let (dir, name) = (dir.clone(), name.clone());
                std::thread::spawn(move || {
                    runtime::stop(&dir);
                    lock(&stopping).remove(&name);
                });
            } else if e.stopping && !lock(&self.stopping).contains(name) {
                e.stopping = false;
            }
            let stopped = phase.is_terminal()
                || phase == Phase::Pending
                || (matches!(phase, Phase::Timeout { .. }) && !runtime::observe(&dir).alive);
            if deleting && stopped && !e.stopping {
                remove.push(name.clone());
            }
        }
        for name in remove {
            entries.remove(&name);
            let _ = std::fs::remove_dir_all(self.dir.join(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_writes_nothing_and_checks_the_nearest_existing_ancestor() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b/tasks");
        let m = Manager::open(&data, 1024).unwrap();
        assert!(
            !root.path().join("a").exists(),
            "open must not create the data dir"
        );
        assert!(m.list().is_empty());

        let file = root.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = Manager::open(&file, 1024).err().unwrap().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn a_missing_data_dir_is_checked_where_it_would_be_created() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b/tasks");
        assert_eq!(nearest_existing_ancestor(&data), root.path());
        assert_eq!(
            nearest_existing_ancestor(Path::new("no-such-dir-here/tasks")),
            Path::new(".")
        );
        assert_eq!(
            nearest_existing_ancestor(Path::new("tasks")),
            Path::new(".")
        );
    }
}
