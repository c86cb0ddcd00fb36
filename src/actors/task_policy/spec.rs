//! The task of every replica: `spec.taskTemplate` with `spec.shardTaskPatches[i]` merged in.

use kube::ResourceExt;
use serde_json::{Map, Value};

use crate::crd::BatchSandbox;

/// The task replica `index` runs, as sent to its executor.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// `<bs>-<index>`.
    pub name: String,
    pub index: u32,
    /// The executor's `process` object: command, args, env, workingDir, timeoutSeconds.
    pub process: Value,
}

/// Why replica `index` has no runnable task.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TaskSpecError {
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl TaskSpecError {
    fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// One entry per replica `0..spec.replicas`; empty when the sandbox has no task template.
/// A bad shard patch spoils only its own replica.
pub fn task_specs(bs: &BatchSandbox) -> Vec<Result<TaskSpec, TaskSpecError>> {
    let Some(template) = bs.spec.task_template.as_ref() else {
        return Vec::new();
    };
    let patches = bs.spec.shard_task_patches.as_deref().unwrap_or_default();
    let replicas = u32::try_from(bs.spec.replicas.max(0)).unwrap_or_default();
    (0..replicas)
        .map(|index| {
            let patch = patches
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .filter(|p| !p.is_null());
            replica_task(&bs.name_any(), template, patch, index)
        })
        .collect()
}

fn replica_task(
    bs: &str,
    template: &Value,
    patch: Option<&Value>,
    index: u32,
) -> Result<TaskSpec, TaskSpecError> {
    let (merged, path) = match patch {
        Some(p) => {
            if !p.is_object() {
                return Err(TaskSpecError::at(
                    format!("spec.shardTaskPatches[{index}]"),
                    "a shard task patch must be an object",
                ));
            }
            (
                merge(template, p),
                format!("spec.taskTemplate patched with spec.shardTaskPatches[{index}]"),
            )
        }
        None => (template.clone(), "spec.taskTemplate".to_string()),
    };
    let spec = merged
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| {
            TaskSpecError::at(
                format!("{path}: spec"),
                "the task template needs a spec object",
            )
        })?;
    let process = spec
        .get("process")
        .filter(|p| !p.is_null())
        .ok_or_else(|| {
            TaskSpecError::at(
                format!("{path}: spec.process"),
                "a task needs a process (container tasks are not supported)",
            )
        })?;
    let mut process = check_process(process, &format!("{path}: spec.process"))?;
    match spec.get("timeoutSeconds") {
        None | Some(Value::Null) => {}
        Some(t) if t.as_i64().is_some_and(|t| t >= 0) => {
            process.insert("timeoutSeconds".into(), t.clone());
        }
        Some(_) => {
            return Err(TaskSpecError::at(
                format!("{path}: spec.timeoutSeconds"),
                "must be a non-negative integer",
            ));
        }
    }
    Ok(TaskSpec {
        name: format!("{bs}-{index}"),
        index,
        process: Value::Object(process),
    })
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(String::from))
        .collect()
}

/// Keeps the fields the executor knows, checking their types; env entries keep `value` only
/// (`valueFrom` cannot be resolved inside a sandbox).
fn check_process(p: &Value, path: &str) -> Result<Map<String, Value>, TaskSpecError> {
    let p = p
        .as_object()
        .ok_or_else(|| TaskSpecError::at(path, "must be an object"))?;
    let mut out = Map::new();
    let command = p
        .get("command")
        .and_then(string_list)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            TaskSpecError::at(
                format!("{path}.command"),
                "must be a non-empty list of strings",
            )
        })?;
    out.insert("command".into(), command.into());
    if let Some(args) = p.get("args").filter(|a| !a.is_null()) {
        let args = string_list(args).ok_or_else(|| {
            TaskSpecError::at(format!("{path}.args"), "must be a list of strings")
        })?;
        out.insert("args".into(), args.into());
    }
    if let Some(env) = p.get("env").filter(|e| !e.is_null()) {
        let list = env
            .as_array()
            .ok_or_else(|| TaskSpecError::at(format!("{path}.env"), "must be a list"))?;
        let mut checked = Vec::with_capacity(list.len());
        for (i, e) in list.iter().enumerate() {
            let name = e.get("name").and_then(Value::as_str).ok_or_else(|| {
                TaskSpecError::at(format!("{path}.env[{i}].name"), "must be a string")
            })?;
            let mut entry = Map::new();
            entry.insert("name".into(), name.into());
            match e.get("value") {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) => {
                    entry.insert("value".into(), v.clone().into());
                }
                Some(_) => {
                    return Err(TaskSpecError::at(
                        format!("{path}.env[{i}].value"),
                        "must be a string",
                    ));
                }
            }
            checked.push(Value::Object(entry));
        }
        out.insert("env".into(), checked.into());
    }
    match p.get("workingDir") {
        None | Some(Value::Null) => {}
        Some(Value::String(w)) => {
            out.insert("workingDir".into(), w.clone().into());
        }
        Some(_) => {
            return Err(TaskSpecError::at(
                format!("{path}.workingDir"),
                "must be a string",
            ));
        }
    }
    Ok(out)
}

/// Strategic merge as Kubernetes does it for these fields: objects merge recursively, `null`
/// deletes, `env` lists merge by `name` (patch entries replace or append), other lists are
/// replaced.
pub(super) fn merge(original: &Value, patch: &Value) -> Value {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let mut out = o.clone();
            for (k, v) in p {
                match v {
                    Value::Null => {
                        out.remove(k);
                    }
                    _ if k == "env" => {
                        let merged = merge_by_name(out.get(k), v);
                        out.insert(k.clone(), merged);
                    }
                    _ => {
                        let merged = match out.get(k) {
                            Some(old) => merge(old, v),
                            None => merge(&Value::Null, v),
                        };
                        out.insert(k.clone(), merged);
                    }
                }
            }
            Value::Object(out)
        }
        (_, Value::Object(p)) => merge(&Value::Object(Map::new()), &Value::Object(p.clone())),
        (_, p) => p.clone(),
    }
}

fn merge_by_name(original: Option<&Value>, patch: &Value) -> Value {
    let (Some(Value::Array(old)), Value::Array(new)) = (original, patch) else {
        return patch.clone();
    };
    let mut out = old.clone();
    for entry in new {
        let name = entry.get("name");
        match out
            .iter_mut()
            .find(|e| name.is_some() && e.get("name") == name)
        {
            Some(existing) => *existing = merge(existing, entry),
            None => out.push(entry.clone()),
        }
    }
    Value::Array(out)
}
