//! Runs a Restart recycle's command in a pod's containers through `pods/exec`: one exec per
//! container, each bounded by [`EXEC_TIMEOUT`], output captured for the log. Failures are
//! only reported: the restart state machine retries on its own schedule.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use super::recycle_restart::EXEC_TIMEOUT;

/// Output kept per stream in the log.
const OUTPUT_LIMIT: usize = 4096;

/// What one exec did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecReport {
    pub container: String,
    pub stdout: String,
    pub stderr: String,
    /// Exit status as the server reported it (`Success`, or the Failure message).
    pub result: Result<String, String>,
}

fn clip(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]);
    s.into_owned()
}

async fn exec_one(api: &Api<Pod>, pod: &str, container: &str, command: &[String]) -> ExecReport {
    let ap = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let run = async {
        let mut proc = api
            .exec(pod, command.to_vec(), &ap)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let stdout = proc.stdout();
        let stderr = proc.stderr();
        let status = proc.take_status();
        let read_out = async {
            if let Some(mut s) = stdout {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(mut s) = stderr {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        let status_fut = async {
            match status {
                Some(f) => f.await,
                None => None,
            }
        };
        let ((), (), status) = tokio::join!(read_out, read_err, status_fut);
        let _ = proc.join().await;
        let result = match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok("Success".to_string()),
            Some(s) => Err(s.message.unwrap_or_else(|| "exec failed".to_string())),
            // The connection closed without a status (the command killed the container's init).
            None => Ok("connection closed".to_string()),
        };
        Ok::<_, String>((clip(&out), clip(&err), result))
    };
    match tokio::time::timeout(EXEC_TIMEOUT, run).await {
        Ok(Ok((stdout, stderr, result))) => ExecReport {
            container: container.to_string(),
            stdout,
            stderr,
            result,
        },
        Ok(Err(e)) => ExecReport {
            container: container.to_string(),
            stdout: String::new(),
            stderr: String::new(),
            result: Err(e),
        },
        Err(_) => ExecReport {
            container: container.to_string(),
            stdout: String::new(),
            stderr: String::new(),
            result: Err(format!("timed out after {EXEC_TIMEOUT:?}")),
        },
    }
}

/// Runs `command` in every container of `containers` (concurrently) and logs each outcome.
pub async fn restart_containers(
    api: Api<Pod>,
    pod: String,
    containers: Vec<String>,
    command: Vec<String>,
) -> Vec<ExecReport> {
    let reports =
        futures::future::join_all(containers.iter().map(|c| exec_one(&api, &pod, c, &command)))
            .await;
    for r in &reports {
        match &r.result {
            Ok(status) => tracing::info!(
                pod = %pod, container = %r.container, command = ?command, status = %status,
                stdout = %r.stdout, stderr = %r.stderr, "restart command ran"
            ),
            Err(e) => tracing::warn!(
                pod = %pod, container = %r.container, command = ?command, error = %e,
                stdout = %r.stdout, stderr = %r.stderr, "restart command failed"
            ),
        }
    }
    reports
}
