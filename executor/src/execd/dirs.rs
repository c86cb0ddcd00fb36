//! `/directories` routes.

use std::collections::BTreeMap;
use std::path::Path;

use actix_web::{HttpRequest, HttpResponse, web};

use super::fileinfo::{self, FileInfo, Permission};
use super::files::{blocking, parse_json};
use super::query;
use super::state::Shared;
use crate::error::{ApiError, ApiResult};

/// Depth-first listing (children right after their parent, lexical order), root excluded,
/// symlinks reported but not descended.
pub fn list_tree(root: &Path, depth: u32) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    walk(root, depth, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, depth: u32, out: &mut Vec<FileInfo>) -> std::io::Result<()> {
    if depth == 0 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        out.push(fileinfo::from_metadata(&path, &meta));
        if meta.is_dir() {
            let _ = walk(&path, depth - 1, out);
        }
    }
    Ok(())
}

pub async fn list(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let qs = req.query_string();
    let raw = query::one(qs, "path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing_query("path"))?;
    let depth = match query::one(qs, "depth") {
        None => 1,
        Some(d) => d.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!("invalid depth '{d}': must be an integer >= 0"))
        })?,
    };
    let state = state.get_ref().clone();
    let list = blocking(move || {
        let root = state.resolve_file(&raw)?;
        let meta = std::fs::symlink_metadata(&root).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ApiError::file_not_found(format!("directory not found: {}", root.display()))
            } else {
                ApiError::runtime(e.to_string())
            }
        })?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(ApiError::bad_request(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        list_tree(&root, depth).map_err(|e| ApiError::runtime(e.to_string()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

pub async fn create(state: web::Data<Shared>, body: web::Bytes) -> ApiResult<HttpResponse> {
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
            std::fs::create_dir_all(&p)
                .map_err(|e| ApiError::runtime(format!("{}: {e}", p.display())))?;
            fileinfo::apply(&p, &perm)
                .map_err(|e| ApiError::runtime(format!("{}: {e}", p.display())))?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn delete(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let paths = query::all(req.query_string(), "path");
    let state = state.get_ref().clone();
    blocking(move || {
        for raw in paths {
            let p = state.resolve_file(&raw)?;
            let res = match std::fs::symlink_metadata(&p) {
                Err(_) => Ok(()),
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
            };
            res.map_err(|e| ApiError::runtime(format!("{}: {e}", p.display())))?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}
