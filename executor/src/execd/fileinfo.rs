//! `FileInfo` objects and permission requests (octal modes written as decimal digits).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub modified_at: String,
    pub created_at: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

/// `0o755` → `755`.
pub fn mode_to_decimal(bits: u32) -> u32 {
    format!("{:o}", bits & 0o777).parse().unwrap_or(0)
}

/// `755` → `0o755`; digits 8 and 9 are invalid.
pub fn decimal_to_mode(digits: u32) -> Option<u32> {
    u32::from_str_radix(&digits.to_string(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
        .unwrap_or_default()
}

pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    }
}

pub fn from_metadata(path: &Path, meta: &std::fs::Metadata) -> FileInfo {
    FileInfo {
        path: path.to_string_lossy().into_owned(),
        kind: kind_of(meta),
        size: meta.len(),
        modified_at: rfc3339(meta.mtime(), meta.mtime_nsec()),
        created_at: rfc3339(meta.ctime(), meta.ctime_nsec()),
        owner: crate::users::user_name(meta.uid()),
        group: crate::users::group_name(meta.gid()),
        mode: mode_to_decimal(meta.permissions().mode()),
    }
}

/// lstat-based info.
pub fn stat(path: &Path) -> std::io::Result<FileInfo> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(from_metadata(path, &meta))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Permission {
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub mode: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PermError {
    #[error("invalid mode {0}: digits must be octal")]
    BadMode(u32),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// chmod when a mode is given, then chown to the named owner/group; when neither name
/// resolves the path is given to the executor's own uid:gid (failures of that default
/// chown are ignored so a non-root executor still works).
pub fn apply(path: &Path, perm: &Permission) -> Result<(), PermError> {
    if let Some(m) = perm.mode.filter(|m| *m != 0) {
        let bits = decimal_to_mode(m).ok_or(PermError::BadMode(m))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))?;
    }
    let uid = perm
        .owner
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(crate::users::uid_by_name);
    let gid = perm
        .group
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(crate::users::gid_by_name);
    if uid.is_none() && gid.is_none() {
        let _ = std::os::unix::fs::chown(
            path,
            Some(nix::unistd::getuid().as_raw()),
            Some(nix::unistd::getgid().as_raw()),
        );
        return Ok(());
    }
    std::os::unix::fs::chown(path, uid, gid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_to_decimal(0o100644), 644);
        assert_eq!(mode_to_decimal(0o755), 755);
        assert_eq!(mode_to_decimal(0o7), 7);
        assert_eq!(decimal_to_mode(755), Some(0o755));
        assert_eq!(decimal_to_mode(600), Some(0o600));
        assert_eq!(decimal_to_mode(788), None);
    }
}
