//! Fuzz entry points: each takes arbitrary bytes and must never panic. `fuzz/` drives
//! them with libFuzzer; `tests/hostile_fuzz.rs` feeds them generated inputs on stable.

use std::path::Path;

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use actix_web::web;
use bytes::Bytes;

use crate::execd::state::{AppState, ExecdConfig};
use crate::paths::Confinement;
use crate::stream::{Event, LineSplitter, frame};

/// Command output split into SSE events: any split of the same bytes gives the same lines,
/// no line exceeds the limit, and every event frame is one JSON object and a blank line.
pub fn sse_lines(data: &[u8]) {
    let max = 16 + usize::from(data.first().copied().unwrap_or(0));
    let cut = data.len() / 2 + usize::from(data.get(1).copied().unwrap_or(0)) % 7;
    let cut = cut.min(data.len());
    let split = |chunks: &[&[u8]]| {
        let mut s = LineSplitter::with_max(false, max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    };
    let whole = split(&[data]);
    let halves = split(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, halves, "line splitting depends on chunking");
    for line in &whole {
        // A lossy conversion may widen invalid bytes to U+FFFD (3 bytes each).
        assert!(line.len() <= max * 3, "line of {} bytes", line.len());
        let f = frame(&Event::stdout(line.clone()));
        assert!(f.ends_with(b"\n\n"));
        let v: serde_json::Value = match serde_json::from_slice(&f[..f.len() - 2]) {
            Ok(v) => v,
            Err(e) => panic!("frame is not JSON: {e}"),
        };
        assert_eq!(v["text"].as_str(), Some(line.as_str()));
        assert!(!f[..f.len() - 2].contains(&b'\n'), "a frame spans lines");
    }
}

/// `/files/upload` fed an arbitrary multipart body (boundary `fuzzb`), confined to
/// `root`: whatever the metadata says, nothing is written outside it, and the upload ends.
pub fn multipart_upload(data: &[u8], root: &Path) {
    let (input, root) = (data.to_vec(), root.to_path_buf());
    // The whole body is in memory: an upload still pending after this long is stuck.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(upload_once(input, root));
        let _ = done_tx.send(());
    });
    let finished = done_rx.recv_timeout(std::time::Duration::from_secs(10));
    assert!(
        finished.is_ok(),
        "upload hangs on a finished body: {:?}",
        String::from_utf8_lossy(data)
    );
}

async fn upload_once(data: Vec<u8>, root: std::path::PathBuf) {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("multipart/form-data; boundary=fuzzb"),
    );
    let chunk = 1 + usize::from(data.first().copied().unwrap_or(0)) % 64;
    let chunks: Vec<_> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let state = AppState::new(ExecdConfig {
        access_token: None,
        envs_file: root.join(".env"),
        tmp_dir: root.join(".tmp"),
        fs_roots: Confinement::new([root.clone()]),
        upload_stall_timeout: std::time::Duration::from_millis(200),
    });
    let form = actix_multipart::Multipart::new(&headers, futures::stream::iter(chunks));
    let _ = crate::execd::transfer::upload(web::Data::new(state), form).await;
}
