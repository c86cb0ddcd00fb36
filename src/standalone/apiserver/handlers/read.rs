//! GET, LIST and WATCH.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::super::registry::ResourceInfo;
use super::super::server::{Body, Call, Core, bytes_response};
use super::super::status::ApiError;
use super::super::store::{ObjRef, WatchStart};
use super::super::table::{self, TableOptions};
use super::super::validation::selector::{parse_field_selector, parse_label_selector};
use super::super::watch::{WatchFilter, WatchItem, bookmark_object, encode_line};

const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Field selector paths every kind supports.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

fn supported_fields(res: &ResourceInfo) -> Vec<String> {
    let extra: &[&str] = match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Node") => &["spec.unschedulable"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    };
    COMMON_FIELDS
        .iter()
        .chain(extra.iter())
        .map(|s| s.to_string())
        .chain(res.selectable_fields.iter().cloned())
        .collect()
}

/// The filter of a list or watch request: namespace from the path, selectors from the query.
pub fn request_filter(call: &Call) -> Result<WatchFilter, ApiError> {
    let labels = match call.param("labelSelector") {
        Some(s) => Some(parse_label_selector(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let mut field_src = call.param("fieldSelector").map(str::to_string);
    // A watch on a named path (`.../pods/p1?watch=true`) selects that name.
    if let Some(name) = &call.path.name {
        let by_name = format!("metadata.name={name}");
        field_src = Some(match field_src {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    }
    let fields = match field_src {
        Some(s) => {
            let sel = parse_field_selector(&s).map_err(ApiError::bad_request)?;
            let supported = supported_fields(&call.res);
            for field in sel.requirements().iter().map(|r| r.field.as_str()) {
                if !supported.iter().any(|f| f == field) {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {field}"
                    )));
                }
            }
            Some(sel)
        }
        None => None,
    };
    Ok(WatchFilter {
        namespace: call.namespace().map(str::to_string),
        labels,
        fields,
        bookmarks: call.flag("allowWatchBookmarks"),
    })
}

fn wants_table(call: &Call) -> bool {
    table::parse_table_accept(call.accept())
}

fn table_options(call: &Call, rv: u64, continue_token: Option<String>) -> TableOptions {
    TableOptions {
        include_object: table::parse_include_object(call.param("includeObject")),
        resource_version: rv.to_string(),
        continue_token,
        now: chrono::Utc::now(),
        with_column_definitions: true,
    }
}

pub fn get(core: &Arc<Core>, call: &Call, name: &str) -> Result<Response<Body>, ApiError> {
    let ns = call.namespace().unwrap_or("");
    let obj = core
        .store
        .get(&call.key(), ns, name)
        .ok_or_else(|| ApiError::not_found(&call.res, name))?;
    if wants_table(call) {
        let opts = table_options(call, core.store.current_rv(), None);
        let t = table::render_table(&call.res, &[&obj.value], &opts);
        return Ok(bytes_response(
            200,
            TABLE_CONTENT_TYPE,
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default()),
        ));
    }
    Ok(bytes_response(200, "application/json", obj.json.clone()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn decode_continue(token: &str) -> Result<ContinueToken, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    })
}

fn encode_continue(t: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).unwrap_or_default())
}

pub fn list(core: &Arc<Core>, call: &Call) -> Result<Response<Body>, ApiError> {
    let filter = request_filter(call)?;
    let (all, rv) = core.store.list(&call.key(), call.namespace());
    let start_after = match call.param("continue") {
        Some(t) => Some(decode_continue(t)?),
        None => None,
    };
    let limit = match call.param("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        None => 0,
    };
    let mut items: Vec<ObjRef> = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    for obj in all {
        if let Some(t) = &start_after
            && (obj.namespace(), obj.name()) <= (t.ns.as_str(), t.name.as_str())
        {
            continue;
        }
        if !filter.matches(&obj.value) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            remaining += 1;
            continue;
        }
        items.push(obj);
    }
    if remaining > 0
        && let Some(last) = items.last()
    {
        next = Some(encode_continue(&ContinueToken {
            rv: start_after.as_ref().map(|t| t.rv).unwrap_or(rv),
            ns: last.namespace().to_string(),
            name: last.name().to_string(),
        }));
    }
    if wants_table(call) {
        let values: Vec<&Value> = items.iter().map(|o| &o.value).collect();
        let opts = table_options(call, rv, next);
        let t = table::render_table(&call.res, &values, &opts);
        return Ok(bytes_response(
            200,
            TABLE_CONTENT_TYPE,
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default()),
        ));
    }
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(n) = next {
        meta["continue"] = json!(n);
        meta["remainingItemCount"] = json!(remaining);
    }
    let head = json!({
        "kind": call.res.list_kind,
        "apiVersion": call.res.api_version(),
        "metadata": meta,
    });
    Ok(bytes_response(
        200,
        "application/json",
        list_body(&head, &items),
    ))
}

/// Serialises a list by splicing the stored bytes of each item.
fn list_body(head: &Value, items: &[ObjRef]) -> Bytes {
    let head = serde_json::to_vec(head).unwrap_or_default();
    let size: usize = items.iter().map(|i| i.json.len() + 1).sum::<usize>() + head.len() + 16;
    let mut buf = BytesMut::with_capacity(size);
    // `head` is an object: drop its closing brace and append the items array.
    buf.put_slice(&head[..head.len().saturating_sub(1)]);
    buf.put_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(&item.json);
    }
    buf.put_slice(b"]}");
    buf.freeze()
}

/// How watch items are written for one watcher.
struct Encoder {
    res: Arc<ResourceInfo>,
    table: Option<TableOptions>,
}

impl Encoder {
    fn encode(&self, item: &WatchItem) -> Bytes {
        match item {
            WatchItem::Event { type_, object } => match &self.table {
                None => encode_line(type_.as_str(), &object.json),
                Some(opts) => {
                    let mut opts = opts.clone();
                    opts.now = chrono::Utc::now();
                    opts.resource_version = object.value["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let t = table::render_table(&self.res, &[&object.value], &opts);
                    encode_line(type_.as_str(), &serde_json::to_vec(&t).unwrap_or_default())
                }
            },
            WatchItem::Bookmark { rv } => {
                let o = bookmark_object(&self.res.api_version(), &self.res.kind, *rv, false);
                encode_line("BOOKMARK", &serde_json::to_vec(&o).unwrap_or_default())
            }
            WatchItem::InitialEventsEnd { rv } => {
                let o = bookmark_object(&self.res.api_version(), &self.res.kind, *rv, true);
                encode_line("BOOKMARK", &serde_json::to_vec(&o).unwrap_or_default())
            }
            WatchItem::Error(status) => {
                encode_line("ERROR", &serde_json::to_vec(status).unwrap_or_default())
            }
        }
    }
}

pub fn watch(core: &Arc<Core>, call: &Call) -> Result<Response<Body>, ApiError> {
    let filter = request_filter(call)?;
    let send_initial = call.flag("sendInitialEvents");
    let rv_param = call.param("resourceVersion");
    let start = match rv_param {
        None | Some("0") => WatchStart::Current,
        // Initial events from a given resourceVersion: the current state satisfies NotOlderThan.
        Some(_) if send_initial => WatchStart::Current,
        Some(rv) => WatchStart::After(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    if send_initial
        && !matches!(
            call.param("resourceVersionMatch"),
            None | Some("NotOlderThan")
        )
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires resourceVersionMatch=NotOlderThan",
        ));
    }
    let timeout = call
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let encoder = Encoder {
        res: call.res.clone(),
        table: wants_table(call).then(|| table_options(call, 0, None)),
    };
    let key = call.key();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match core.store.watch(&key, filter, start) {
        Err(expired) => {
            // An expired resourceVersion is an in-stream ERROR in a 200 response.
            let status = ApiError::expired(expired.requested, expired.oldest).to_status();
            let line = encoder.encode(&WatchItem::Error(status));
            let _ = tx.try_send(line);
            drop(tx);
        }
        Ok(mut reg) => {
            let core = core.clone();
            tokio::spawn(async move {
                let mut send_ok = true;
                for item in reg.initial.drain(..) {
                    if tx.send(encoder.encode(&item)).await.is_err() {
                        send_ok = false;
                        break;
                    }
                }
                if send_ok && send_initial {
                    let end = WatchItem::InitialEventsEnd { rv: reg.start_rv };
                    send_ok = tx.send(encoder.encode(&end)).await.is_ok();
                }
                if send_ok {
                    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                    loop {
                        let next = async {
                            match deadline {
                                Some(d) => tokio::time::timeout_at(d, reg.rx.recv()).await.ok(),
                                None => Some(reg.rx.recv().await),
                            }
                        };
                        tokio::select! {
                            biased;
                            _ = tx.closed() => break,
                            item = next => match item {
                                Some(Some(item)) => {
                                    let closes = matches!(item, WatchItem::Error(_));
                                    if tx.send(encoder.encode(&item)).await.is_err() || closes {
                                        break;
                                    }
                                }
                                // Closed by the server (dropped watch) or timed out.
                                _ => break,
                            }
                        }
                    }
                }
                core.store.unwatch(&key, reg.id);
            });
        }
    }
    let stream = ReceiverStream::new(rx).map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
