//! Spawning helpers: process groups, identity switch, environment assembly, group kills.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::process::ExitStatus;

/// Where the executor's access token comes from (see `--access-token`).
pub const ACCESS_TOKEN_ENV: &str = "EXECD_ACCESS_TOKEN";

/// Environment for a command: executor env, then `EXECD_ENVS` entries, then request envs.
/// `EXECD_ENVS` itself is always exported so `commands.set_env` can append to the file.
pub fn command_env(
    envs_file: &std::path::Path,
    overlay: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    // The access token guards the executor's API; commands in the sandbox do not need it.
    env.remove(ACCESS_TOKEN_ENV);
    env.insert(
        "EXECD_ENVS".to_string(),
        envs_file.to_string_lossy().into_owned(),
    );
    for (k, v) in crate::envfile::load(envs_file) {
        env.insert(k, v);
    }
    if let Some(o) = overlay {
        for (k, v) in o {
            env.insert(k.clone(), v.clone());
        }
    }
    env
}

/// Puts the child in its own process group and optionally switches uid/gid (with the
/// supplementary groups from the group db when the uid is known).
pub fn configure(cmd: &mut tokio::process::Command, uid: Option<u32>, gid: Option<u32>) {
    cmd.process_group(0);
    if let Some(uid) = uid {
        let ident = crate::users::identity_of(uid);
        let gid = gid.or(ident.as_ref().map(|(g, _)| *g)).unwrap_or(uid);
        let mut groups: Vec<nix::unistd::Gid> = ident
            .map(|(_, s)| s.into_iter().map(nix::unistd::Gid::from_raw).collect())
            .unwrap_or_default();
        if !groups.iter().any(|g| g.as_raw() == gid) {
            groups.push(nix::unistd::Gid::from_raw(gid));
        }
        // SAFETY: only async-signal-safe syscalls (setgroups/setgid/setuid) run between
        // fork and exec; the vectors were allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&groups).map_err(std::io::Error::from)?;
                nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
                    .map_err(std::io::Error::from)?;
                nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
}

/// The shell used for `command` strings: bash when present on PATH, else sh.
pub fn shell() -> &'static str {
    static SHELL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        if path
            .split(':')
            .any(|d| std::path::Path::new(d).join("bash").is_file())
        {
            "bash"
        } else {
            "sh"
        }
    })
}

pub fn kill_group(pgid: i32, sig: Signal) -> bool {
    pgid > 0 && killpg(Pid::from_raw(pgid), sig).is_ok()
}

/// Exit code as execd reports it: the code, or -1 when killed by a signal.
pub fn exit_code(status: &ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

/// Go-style description: `exit status N` or `signal: killed`.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(9)) => "signal: killed".to_string(),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!(
                "signal: {}",
                sig.as_str().trim_start_matches("SIG").to_lowercase()
            ),
            Err(_) => format!("signal: {s}"),
        },
        (None, None) => "unknown exit".to_string(),
    }
}
