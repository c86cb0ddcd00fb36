//! Credentials of a standalone instance. Sandboxes are processes on the same machine and
//! can reach every loopback port, so neither the SDK API nor the embedded Kubernetes API
//! is ever served without a secret: the Kubernetes API gets a fresh bearer token each start
//! (in the 0600 kubeconfig), and the SDK API the given key or one generated once and kept
//! in `<state dir>/api-key` (0600).

use std::path::{Path, PathBuf};

/// File (in the state directory) holding the generated SDK API key.
pub const API_KEY_FILE: &str = "api-key";

/// Where the SDK API key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `--api-key`, `OPENSANDBOX_SERVER_API_KEY` or the configuration file.
    Given,
    /// Generated (or kept from an earlier start) in this file.
    File(PathBuf),
}

/// The SDK API key: `given` when not blank, else the one in `<state_dir>/api-key`, created
/// with a random key when missing or blank.
pub fn sdk_api_key(
    given: Option<&str>,
    state_dir: &Path,
) -> std::io::Result<(String, ApiKeySource)> {
    if let Some(k) = given.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok((k.to_string(), ApiKeySource::Given));
    }
    let path = state_dir.join(API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => {
            return Ok((k.trim().to_string(), ApiKeySource::File(path)));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = super::apiserver::BearerToken::generate()
        .as_str()
        .to_string();
    super::apiserver::write_private(&path, format!("{key}\n").as_bytes())?;
    Ok((key, ApiKeySource::File(path)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn given_key_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (k, src) = sdk_api_key(Some(" k1 "), dir.path()).unwrap();
        assert_eq!((k.as_str(), src), ("k1", ApiKeySource::Given));
        assert!(!dir.path().join(API_KEY_FILE).exists());
    }

    #[test]
    fn generated_key_is_private_and_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, src) = sdk_api_key(Some(""), dir.path()).unwrap();
        let path = dir.path().join(API_KEY_FILE);
        assert_eq!(src, ApiKeySource::File(path.clone()));
        assert_eq!(k1.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, _) = sdk_api_key(None, dir.path()).unwrap();
        assert_eq!(k1, k2);
    }
}
