//! `/files/upload` (streamed multipart pairs) and `/files/download` (Range, line mode).

use std::path::{Path, PathBuf};

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::fileinfo::{self, Permission};
use super::query;
use super::state::Shared;
use crate::error::{
    ApiError, ApiResult, INVALID_FILE, INVALID_FILE_CONTENT, INVALID_FILE_METADATA,
};
use crate::range::{RangeOutcome, parse_range};

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    path: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    mode: Option<u32>,
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(actix_web::http::StatusCode::BAD_REQUEST, code, msg)
}

const MAX_METADATA: usize = 1024 * 1024;

/// Read size for file bodies (the default 4 KiB makes downloads syscall-bound).
pub const CHUNK: usize = 256 * 1024;

/// A file part that arrived before its metadata, spooled to a temporary file.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn upload(state: web::Data<Shared>, mut form: Multipart) -> ApiResult<HttpResponse> {
    let mut metas: Vec<(PathBuf, Permission)> = Vec::new();
    let mut spooled: Vec<Spooled> = Vec::new();
    let mut files = 0usize;
    let mut saw_part = false;
    let stall = state.cfg.upload_stall_timeout;
    loop {
        let field = match within(stall, form.try_next()).await? {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if !saw_part => {
                return Err(bad(INVALID_FILE, format!("multipart form is empty: {e}")));
            }
            Err(e) => return Err(bad(INVALID_FILE, format!("invalid multipart body: {e}"))),
        };
        saw_part = true;
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "metadata" => {
                let mut buf = Vec::new();
                let mut field = field;
                while let Some(chunk) = within(stall, field.next()).await? {
                    let chunk = chunk.map_err(|e| bad(INVALID_FILE, e.to_string()))?;
                    if buf.len() + chunk.len() > MAX_METADATA {
                        return Err(bad(INVALID_FILE_METADATA, "metadata too large"));
                    }
                    buf.extend_from_slice(&chunk);
                }
                let meta: Metadata = serde_json::from_slice(&buf)
                    .map_err(|e| bad(INVALID_FILE_METADATA, format!("invalid metadata: {e}")))?;
                if meta.path.is_empty() {
                    return Err(bad(INVALID_FILE_METADATA, "metadata path is required"));
                }
                let target = state.resolve_file(&meta.path).map_err(|e| match e {
                    crate::paths::PathError::Outside(_) => ApiError::from(e),
                    e => bad(INVALID_FILE_METADATA, e.to_string()),
                })?;
                let perm = Permission {
                    owner: meta.owner,
                    group: meta.group,
                    mode: meta.mode,
                };
                let idx = metas.len();
                metas.push((target.clone(), perm.clone()));
                if let Some(sp) = spooled.get(idx) {
                    let src = sp.0.clone();
                    let mut file = tokio::fs::File::open(&src)
                        .await
                        .map_err(|e| ApiError::runtime(e.to_string()))?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(
                        &mut file,
                        crate::execd::transfer::CHUNK,
                    )
                    .map_err(|e| ApiError::runtime(e.to_string()));
                    write_target(&target, &perm, stream).await?;
                }
            }
            "file" => {
                let stream = stalling(field.map_err(|e| bad(INVALID_FILE, e.to_string())), stall);
                if let Some((target, perm)) = metas.get(files).cloned() {
                    write_target(&target, &perm, stream).await?;
                } else {
                    let tmp = state
                        .scratch_dir()
                        .map_err(|e| ApiError::runtime(e.to_string()))?
                        .join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
                    let sp = Spooled(tmp.clone());
                    copy_into(&tmp, stream).await?;
                    spooled.push(sp);
                }
                files += 1;
            }
            _ => {
                let mut field = field;
                while let Some(chunk) = within(stall, field.next()).await? {
                    chunk.map_err(|e| bad(INVALID_FILE, e.to_string()))?;
                }
            }
        }
    }
    if !saw_part {
        return Err(bad(INVALID_FILE, "multipart form is empty"));
    }
    if metas.is_empty() {
        return Err(bad(INVALID_FILE_METADATA, "metadata file is missing"));
    }
    if files == 0 {
        return Err(bad(INVALID_FILE_CONTENT, "file is missing"));
    }
    if files != metas.len() {
        return Err(bad(
            INVALID_FILE,
            format!(
                "metadata and file count mismatch: {} vs {files}",
                metas.len()
            ),
        ));
    }
    Ok(HttpResponse::Ok().finish())
}

/// The multipart parser stays pending forever on a body that ends inside a part, and a
/// client may stop sending: no progress for `limit` fails the upload.
async fn within<F: std::future::Future>(limit: std::time::Duration, f: F) -> ApiResult<F::Output> {
    tokio::time::timeout(limit, f).await.map_err(|_| {
        bad(
            INVALID_FILE,
            format!("multipart body incomplete or stalled for {limit:?}"),
        )
    })
}

/// `stream` failing once no item arrived for `limit`.
fn stalling<S>(
    stream: S,
    limit: std::time::Duration,
) -> std::pin::Pin<Box<dyn Stream<Item = ApiResult<Bytes>>>>
where
    S: Stream<Item = ApiResult<Bytes>> + Unpin + 'static,
{
    Box::pin(futures::stream::unfold(
        Some(stream),
        move |state| async move {
            let mut stream = state?;
            match within(limit, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

async fn copy_into<S>(path: &Path, mut stream: S) -> ApiResult<()>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
{
    let mut f = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::runtime(format!("{}: {e}", path.display())))?;
    while let Some(chunk) = stream.next().await {
        f.write_all(&chunk?)
            .await
            .map_err(|e| ApiError::runtime(format!("{}: {e}", path.display())))?;
    }
    f.flush()
        .await
        .map_err(|e| ApiError::runtime(e.to_string()))?;
    Ok(())
}

async fn write_target<S>(target: &Path, perm: &Permission, stream: S) -> ApiResult<()>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
{
    let rt = |e: std::io::Error| ApiError::runtime(format!("{}: {e}", target.display()));
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(rt)?;
    }
    copy_into(target, stream).await?;
    let f = tokio::fs::File::open(target).await.map_err(rt)?;
    f.sync_all().await.map_err(rt)?;
    if let Some(parent) = target.parent()
        && let Ok(d) = tokio::fs::File::open(parent).await
    {
        let _ = d.sync_all().await;
    }
    if let Some(m) = perm.mode.filter(|m| *m != 0)
        && fileinfo::decimal_to_mode(m).is_none()
    {
        return Err(bad(INVALID_FILE_METADATA, format!("invalid mode {m}")));
    }
    let (t, p) = (target.to_path_buf(), perm.clone());
    let first = web::block(move || fileinfo::apply(&t, &p).map_err(|e| e.to_string()))
        .await
        .map_err(|e| ApiError::runtime(e.to_string()))?;
    if first.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (t, p) = (target.to_path_buf(), perm.clone());
        web::block(move || fileinfo::apply(&t, &p).map_err(|e| e.to_string()))
            .await
            .map_err(|e| ApiError::runtime(e.to_string()))?
            .map_err(ApiError::runtime)?;
    }
    Ok(())
}

/// `Content-Disposition` value; non-ASCII names get a percent-encoded `filename*` too.
pub fn content_disposition(name: &str) -> String {
    if name.is_ascii() {
        format!("attachment; filename=\"{}\"", name.replace('"', "\\\""))
    } else {
        let enc = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        format!("attachment; filename=\"{enc}\"; filename*=UTF-8''{enc}")
    }
}

fn positive(q: &str, key: &str) -> ApiResult<Option<u64>> {
    match query::one(q, key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be an integer >= 1"))),
    }
}

pub async fn download(state: web::Data<Shared>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let qs = req.query_string();
    let raw = query::one(qs, "path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing_query("path"))?;
    let path = state.resolve_file(&raw)?;
    let (offset, limit) = (positive(qs, "offset")?, positive(qs, "limit")?);
    let range_header = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid").to_string());
    if (offset.is_some() || limit.is_some()) && range_header.is_some() {
        return Err(ApiError::bad_request(
            "offset/limit and Range are mutually exclusive",
        ));
    }
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::file_not_found(format!("file not found: {}", path.display()))
        } else {
            ApiError::runtime(format!("{}: {e}", path.display()))
        }
    })?;
    if meta.is_dir() {
        return Err(ApiError::bad_request(format!(
            "{} is a directory",
            path.display()
        )));
    }
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::runtime(format!("{}: {e}", path.display())))?;
    if offset.is_some() || limit.is_some() {
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .streaming(line_window(file, offset.unwrap_or(1), limit)));
    }
    let size = meta.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut resp = HttpResponse::Ok();
    resp.content_type("application/octet-stream")
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(&name)))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if let Ok(modified) = meta.modified() {
        resp.insert_header((header::LAST_MODIFIED, header::HttpDate::from(modified)));
    }
    if let Some(h) = range_header {
        match parse_range(&h, size) {
            Err(_) => {
                return Ok(
                    HttpResponse::build(actix_web::http::StatusCode::RANGE_NOT_SATISFIABLE)
                        .content_type("application/json; charset=utf-8")
                        .body(r#"{"code":"UNKNOWN"}"#),
                );
            }
            Ok(RangeOutcome::NoOverlap) => {
                return Ok(
                    HttpResponse::build(actix_web::http::StatusCode::RANGE_NOT_SATISFIABLE)
                        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                        .content_type("text/plain; charset=utf-8")
                        .body("invalid range: failed to overlap"),
                );
            }
            Ok(RangeOutcome::Partial(r)) => {
                file.seek(std::io::SeekFrom::Start(r.start))
                    .await
                    .map_err(|e| ApiError::runtime(e.to_string()))?;
                let body = tokio_util::io::ReaderStream::with_capacity(
                    file.take(r.len()),
                    crate::execd::transfer::CHUNK,
                );
                return Ok(resp
                    .status(actix_web::http::StatusCode::PARTIAL_CONTENT)
                    .insert_header((
                        header::CONTENT_RANGE,
                        format!("bytes {}-{}/{size}", r.start, r.end),
                    ))
                    .no_chunking(r.len())
                    .streaming(body));
            }
        }
    }
    let body =
        tokio_util::io::ReaderStream::with_capacity(file.take(size), crate::execd::transfer::CHUNK);
    Ok(resp.no_chunking(size).streaming(body))
}

/// Lines `offset..offset+limit` (1-based), terminators stripped, joined with `\n`.
fn line_window(
    file: tokio::fs::File,
    offset: u64,
    limit: Option<u64>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    use tokio::io::AsyncBufReadExt;
    let reader = tokio::io::BufReader::new(file);
    futures::stream::unfold(
        (reader, 1u64, 0u64),
        move |(mut reader, lineno, emitted)| async move {
            let mut lineno = lineno;
            loop {
                if limit.is_some_and(|l| emitted >= l) {
                    return None;
                }
                let mut buf = Vec::new();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) => return None,
                    Err(e) => return Some((Err(e), (reader, lineno, emitted))),
                    Ok(_) => {}
                }
                let current = lineno;
                lineno += 1;
                if current < offset {
                    continue;
                }
                if buf.ends_with(b"\n") {
                    buf.pop();
                    if buf.ends_with(b"\r") {
                        buf.pop();
                    }
                }
                let mut out = Vec::with_capacity(buf.len() + 1);
                if emitted > 0 {
                    out.push(b'\n');
                }
                out.extend_from_slice(&buf);
                return Some((Ok(Bytes::from(out)), (reader, lineno, emitted + 1)));
            }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn disposition() {
        assert_eq!(
            super::content_disposition("a.txt"),
            "attachment; filename=\"a.txt\""
        );
        assert!(super::content_disposition("é.txt").contains("filename*=UTF-8''%C3%A9%2Etxt"));
    }
}
