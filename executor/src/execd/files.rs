//! `/files/*` routes.

use std::collections::BTreeMap;
use std::path::Path;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::fileinfo::{self, FileInfo, Permission};
use super::query;
use super::state::Shared;
use crate::error::{ApiError, ApiResult};

pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "error parsing request, MAYBE invalid body format. {e}"
        ))
    })
}

/// Runs blocking filesystem work off the async worker.
pub async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    web::block(f)
        .await
        .map_err(|e| ApiError::runtime(e.to_string()))?
}

fn io_err(path: &Path, e: std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ApiError::file_not_found(format!("file not found: {}", path.display()))
    } else {
        ApiError::runtime(format!("{}: {e}", path.display()))
    }
}

pub async fn info(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let paths = query::all(req.query_string(), "path");
    let state = state.get_ref().clone();
    let map = blocking(move || {
        let mut out: BTreeMap<String, FileInfo> = BTreeMap::new();
        for raw in paths {
            let p = state.resolve_file(&raw)?;
            let fi = fileinfo::stat(&p).map_err(|e| io_err(&p, e))?;
            out.insert(raw, fi);
        }
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok().json(map))
}

pub async fn delete(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let paths = query::all(req.query_string(), "path");
    let state = state.get_ref().clone();
    blocking(move || {
        for raw in paths {
            let p = state.resolve_file(&raw)?;
            match std::fs::metadata(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ApiError::runtime(format!("{}: {e}", p.display()))),
                Ok(m) if m.is_dir() => {
                    return Err(ApiError::runtime(format!(
                        "{}: path is a directory",
                        p.display()
                    )));
                }
                Ok(_) => std::fs::remove_file(&p).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(ApiError::runtime(format!("{}: {e}", p.display())))
                    }
                })?,
            }
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn permissions(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let map: BTreeMap<String, Permission> = parse_json(&body)?;
    let state = state.get_ref().clone();
    blocking(move || {
        for (raw, perm) in map {
            let p = state.resolve_file(&raw)?;
            if let Some(m) = perm.mode.filter(|m| *m != 0)
                && fileinfo::decimal_to_mode(m).is_none()
            {
                return Err(ApiError::bad_request(format!("invalid mode {m}")));
            }
            fileinfo::apply(&p, &perm)
                .map_err(|e| ApiError::runtime(format!("{}: {e}", p.display())))?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
struct MoveItem {
    src: String,
    dest: String,
}

pub async fn mv(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let items: Vec<MoveItem> = parse_json(&body)?;
    let state = state.get_ref().clone();
    blocking(move || {
        for it in items {
            let src = state.resolve_file(&it.src)?;
            let dest = state.resolve_file(&it.dest)?;
            std::fs::symlink_metadata(&src).map_err(|e| io_err(&src, e))?;
            if std::fs::symlink_metadata(&dest).is_ok() {
                return Err(ApiError::runtime(format!(
                    "{}: destination exists",
                    dest.display()
                )));
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
            std::fs::rename(&src, &dest)
                .map_err(|e| ApiError::runtime(format!("rename {}: {e}", src.display())))?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// Recursive walk (symlinked directories not followed) keeping non-directories whose base
/// name matches `matcher`.
pub fn search_tree(root: &Path, matcher: &globset::GlobMatcher) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if matcher.is_match(Path::new(&e.file_name())) {
                out.push(fileinfo::from_metadata(&path, &meta));
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

pub fn glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    let pattern = if pattern.is_empty() { "**" } else { pattern };
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

pub async fn search(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let qs = req.query_string();
    let raw = query::one(qs, "path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing_query("path"))?;
    let pattern = query::one(qs, "pattern").unwrap_or_default();
    let state = state.get_ref().clone();
    let list = blocking(move || {
        let root = state.resolve_file(&raw)?;
        std::fs::metadata(&root).map_err(|e| io_err(&root, e))?;
        let matcher =
            glob(&pattern).map_err(|e| ApiError::runtime(format!("invalid pattern: {e}")))?;
        search_tree(&root, &matcher).map_err(|e| io_err(&root, e))
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
struct ReplaceItem {
    old: String,
    #[serde(default)]
    new: String,
}

pub async fn replace(
    state: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let verbose = query::one(req.query_string(), "verbose").as_deref() == Some("true");
    let map: BTreeMap<String, ReplaceItem> = parse_json(&body)?;
    if map.values().any(|i| i.old.is_empty()) {
        return Err(ApiError::bad_request("old content must not be empty"));
    }
    let state = state.get_ref().clone();
    let counts = blocking(move || {
        let mut counts = BTreeMap::new();
        for (raw, item) in map {
            let p = state.resolve_file(&raw)?;
            let content = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
            let (replaced, n) = replace_all(&content, item.old.as_bytes(), item.new.as_bytes());
            if n > 0 {
                std::fs::write(&p, replaced).map_err(|e| io_err(&p, e))?;
            }
            counts.insert(raw, serde_json::json!({ "replacedCount": n }));
        }
        Ok(counts)
    })
    .await?;
    if verbose {
        Ok(HttpResponse::Ok().json(counts))
    } else {
        Ok(HttpResponse::Ok().finish())
    }
}

/// Replaces every non-overlapping occurrence; returns the new content and the count.
pub fn replace_all(haystack: &[u8], old: &[u8], new: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(haystack.len());
    let mut count = 0;
    let mut i = 0;
    while i < haystack.len() {
        if !old.is_empty() && haystack[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
            count += 1;
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_counts() {
        assert_eq!(replace_all(b"aXbXc", b"X", b"--"), (b"a--b--c".to_vec(), 2));
        assert_eq!(replace_all(b"aaa", b"aa", b"b"), (b"ba".to_vec(), 1));
        assert_eq!(replace_all(b"abc", b"z", b"y"), (b"abc".to_vec(), 0));
    }

    #[test]
    fn globs() {
        let m = glob("*.txt").unwrap();
        assert!(m.is_match("a.txt"));
        assert!(!m.is_match("a.rs"));
        assert!(glob("").unwrap().is_match("anything"));
        assert!(glob("a[").is_err());
    }
}
