//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! helm writes its release Secrets and its DeleteOptions in protobuf, and kubectl's generator
//! subcommands (`create configmap|secret|namespace|serviceaccount|deployment|service|role|
//! rolebinding ...`) do the same. Responses are always JSON, so only decoding is needed, and only
//! for the kinds those clients send; any other kind is `UnsupportedKind` (answer 415).
//!
//! Layout: the 4 magic bytes `k8s\0`, then a `runtime.Unknown` message
//! {1 typeMeta {1 apiVersion, 2 kind}, 2 raw (the object), 3 contentEncoding, 4 contentType}.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value, json};

/// The magic prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the k8s magic prefix")]
    BadMagic,
    #[error("protobuf body is truncated")]
    Truncated,
    #[error("protobuf varint is too long")]
    VarintOverflow,
    #[error("unsupported protobuf wire type {0}")]
    BadWireType(u8),
    #[error("protobuf field {0} has the wrong wire type")]
    WrongWireType(u32),
    #[error("protobuf string field is not valid UTF-8")]
    InvalidUtf8,
    #[error("protobuf timestamp is out of range")]
    BadTimestamp,
    #[error("protobuf decoding of kind {0:?} is not supported; send JSON instead")]
    UnsupportedKind(String),
    /// A field the decoder does not know carries a value: refusing beats dropping it silently.
    #[error("protobuf field {field} of {message} is not supported; send JSON instead")]
    UnsupportedField { message: &'static str, field: u32 },
}

/// True when a Content-Type header names the Kubernetes protobuf media type.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Decodes a protobuf body (magic + envelope + object) into the JSON form of the object.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let env = decode_envelope(body)?;
    let mut obj = match env.kind.as_str() {
        "Secret" => secret(&env.raw)?,
        "ConfigMap" => config_map(&env.raw)?,
        "Namespace" => namespace(&env.raw)?,
        "ServiceAccount" => service_account(&env.raw)?,
        "DeleteOptions" => delete_options(&env.raw)?,
        "Deployment" => table_message(&DEPLOYMENT, &env.raw)?,
        "Service" => table_message(&SERVICE, &env.raw)?,
        "Pod" => table_message(&POD, &env.raw)?,
        "Role" | "ClusterRole" => table_message(&ROLE, &env.raw)?,
        "RoleBinding" | "ClusterRoleBinding" => table_message(&ROLE_BINDING, &env.raw)?,
        _ => return Err(ProtobufError::UnsupportedKind(env.kind)),
    };
    set_type_meta(&mut obj, &env.api_version, &env.kind);
    Ok(Value::Object(obj))
}

fn set_type_meta(obj: &mut Map<String, Value>, api_version: &str, kind: &str) {
    if !api_version.is_empty() {
        obj.insert("apiVersion".into(), json!(api_version));
    }
    obj.insert("kind".into(), json!(kind));
}

// ---------------------------------------------------------------------------------------------
// Wire reader

/// One field of a message as found on the wire.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// fixed32 / fixed64: skipped by every message decoded here.
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let (&byte, rest) = self.buf.split_first().ok_or(ProtobufError::Truncated)?;
            self.buf = rest;
            if i == 9 && byte > 1 {
                return Err(ProtobufError::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if n > self.buf.len() {
            return Err(ProtobufError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), or None at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u32, Field<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| ProtobufError::VarintOverflow)?;
        let field = match (key & 7) as u8 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed
            }
            other => return Err(ProtobufError::BadWireType(other)),
        };
        Ok(Some((number, field)))
    }
}

/// Calls `f` for every field of a message.
fn for_each_field<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u32, Field<'a>) -> Result<(), ProtobufError>,
) -> Result<(), ProtobufError> {
    let mut r = Reader::new(buf);
    while let Some((n, field)) = r.next_field()? {
        f(n, field)?;
    }
    Ok(())
}

fn bytes_of(n: u32, f: Field<'_>) -> Result<&[u8], ProtobufError> {
    match f {
        Field::Bytes(b) => Ok(b),
        _ => Err(ProtobufError::WrongWireType(n)),
    }
}

fn string_of(n: u32, f: Field<'_>) -> Result<String, ProtobufError> {
    let b = bytes_of(n, f)?;
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| ProtobufError::InvalidUtf8)
}

fn varint_of(n: u32, f: Field<'_>) -> Result<u64, ProtobufError> {
    match f {
        Field::Varint(v) => Ok(v),
        _ => Err(ProtobufError::WrongWireType(n)),
    }
}

fn int_of(n: u32, f: Field<'_>) -> Result<i64, ProtobufError> {
    // Two's complement reinterpretation is how protobuf carries negative int64/int32.
    Ok(varint_of(n, f)? as i64)
}

fn bool_of(n: u32, f: Field<'_>) -> Result<bool, ProtobufError> {
    Ok(varint_of(n, f)? != 0)
}

/// Inserts a string unless it is the proto default (empty), which JSON omits.
fn put_str(
    out: &mut Map<String, Value>,
    key: &str,
    n: u32,
    f: Field<'_>,
) -> Result<(), ProtobufError> {
    let s = string_of(n, f)?;
    if !s.is_empty() {
        out.insert(key.into(), Value::String(s));
    }
    Ok(())
}

fn push_str(
    out: &mut Map<String, Value>,
    key: &str,
    n: u32,
    f: Field<'_>,
) -> Result<(), ProtobufError> {
    let s = string_of(n, f)?;
    push(out, key, Value::String(s));
    Ok(())
}

fn push(out: &mut Map<String, Value>, key: &str, v: Value) {
    match out.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(a) => a.push(v),
        other => *other = Value::Array(vec![v]),
    }
}

/// A map entry message {1 key, 2 value}, the value rendered by `value`.
fn map_entry(
    buf: &[u8],
    value: impl Fn(&[u8]) -> Result<Value, ProtobufError>,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut val: Option<Value> = None;
    for_each_field(buf, |n, f| {
        match n {
            1 => key = string_of(n, f)?,
            2 => val = Some(value(bytes_of(n, f)?)?),
            _ => {}
        }
        Ok(())
    })?;
    let val = match val {
        Some(v) => v,
        None => value(&[])?,
    };
    Ok((key, val))
}

fn utf8_value(b: &[u8]) -> Result<Value, ProtobufError> {
    std::str::from_utf8(b)
        .map(|s| Value::String(s.to_string()))
        .map_err(|_| ProtobufError::InvalidUtf8)
}

fn base64_value(b: &[u8]) -> Result<Value, ProtobufError> {
    Ok(Value::String(STANDARD.encode(b)))
}

fn put_map_entry(
    out: &mut Map<String, Value>,
    key: &str,
    n: u32,
    f: Field<'_>,
    value: impl Fn(&[u8]) -> Result<Value, ProtobufError>,
) -> Result<(), ProtobufError> {
    let (k, v) = map_entry(bytes_of(n, f)?, value)?;
    if let Value::Object(m) = out.entry(key).or_insert_with(|| json!({})) {
        m.insert(k, v);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages

struct Envelope {
    api_version: String,
    kind: String,
    raw: Vec<u8>,
}

fn decode_envelope(buf: &[u8]) -> Result<Envelope, ProtobufError> {
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: Vec::new(),
    };
    for_each_field(buf, |n, f| {
        match n {
            1 => for_each_field(bytes_of(n, f)?, |n, f| {
                match n {
                    1 => env.api_version = string_of(n, f)?,
                    2 => env.kind = string_of(n, f)?,
                    _ => {}
                }
                Ok(())
            })?,
            2 => env.raw = bytes_of(n, f)?.to_vec(),
            _ => {}
        }
        Ok(())
    })?;
    Ok(env)
}

/// `metav1.Time` {1 seconds, 2 nanos} as RFC 3339 with second precision; None for the zero time.
fn timestamp(buf: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for_each_field(buf, |n, f| {
        match n {
            1 => seconds = int_of(n, f)?,
            2 => nanos = int_of(n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let t = DateTime::from_timestamp(seconds, 0).ok_or(ProtobufError::BadTimestamp)?;
    Ok(Some(json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))))
}

fn put_time(
    out: &mut Map<String, Value>,
    key: &str,
    n: u32,
    f: Field<'_>,
) -> Result<(), ProtobufError> {
    if let Some(t) = timestamp(bytes_of(n, f)?)? {
        out.insert(key.into(), t);
    }
    Ok(())
}

fn object_meta(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "name", n, f)?,
            2 => put_str(&mut m, "generateName", n, f)?,
            3 => put_str(&mut m, "namespace", n, f)?,
            5 => put_str(&mut m, "uid", n, f)?,
            6 => put_str(&mut m, "resourceVersion", n, f)?,
            7 => {
                let g = int_of(n, f)?;
                if g != 0 {
                    m.insert("generation".into(), json!(g));
                }
            }
            8 => put_time(&mut m, "creationTimestamp", n, f)?,
            9 => put_time(&mut m, "deletionTimestamp", n, f)?,
            10 => {
                m.insert("deletionGracePeriodSeconds".into(), json!(int_of(n, f)?));
            }
            11 => put_map_entry(&mut m, "labels", n, f, utf8_value)?,
            12 => put_map_entry(&mut m, "annotations", n, f, utf8_value)?,
            13 => push(&mut m, "ownerReferences", owner_reference(bytes_of(n, f)?)?),
            14 => push_str(&mut m, "finalizers", n, f)?,
            17 => push(
                &mut m,
                "managedFields",
                managed_fields_entry(bytes_of(n, f)?)?,
            ),
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn owner_reference(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "kind", n, f)?,
            3 => put_str(&mut m, "name", n, f)?,
            4 => put_str(&mut m, "uid", n, f)?,
            5 => put_str(&mut m, "apiVersion", n, f)?,
            6 => {
                m.insert("controller".into(), json!(bool_of(n, f)?));
            }
            7 => {
                m.insert("blockOwnerDeletion".into(), json!(bool_of(n, f)?));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn managed_fields_entry(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "manager", n, f)?,
            2 => put_str(&mut m, "operation", n, f)?,
            3 => put_str(&mut m, "apiVersion", n, f)?,
            4 => put_time(&mut m, "time", n, f)?,
            6 => put_str(&mut m, "fieldsType", n, f)?,
            7 => {
                // FieldsV1 {1 Raw}: the raw bytes are the JSON field set.
                let mut raw = Value::Null;
                for_each_field(bytes_of(n, f)?, |n, f| {
                    if n == 1 {
                        raw = serde_json::from_slice(bytes_of(n, f)?).unwrap_or(Value::Null);
                    }
                    Ok(())
                })?;
                if !raw.is_null() {
                    m.insert("fieldsV1".into(), raw);
                }
            }
            8 => put_str(&mut m, "subresource", n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn secret(buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => {
                m.insert("metadata".into(), object_meta(bytes_of(n, f)?)?);
            }
            2 => put_map_entry(&mut m, "data", n, f, base64_value)?,
            3 => put_str(&mut m, "type", n, f)?,
            4 => put_map_entry(&mut m, "stringData", n, f, utf8_value)?,
            5 => {
                m.insert("immutable".into(), json!(bool_of(n, f)?));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(m)
}

fn config_map(buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => {
                m.insert("metadata".into(), object_meta(bytes_of(n, f)?)?);
            }
            2 => put_map_entry(&mut m, "data", n, f, utf8_value)?,
            3 => put_map_entry(&mut m, "binaryData", n, f, base64_value)?,
            4 => {
                m.insert("immutable".into(), json!(bool_of(n, f)?));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(m)
}

fn namespace(buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => {
                m.insert("metadata".into(), object_meta(bytes_of(n, f)?)?);
            }
            2 => {
                m.insert("spec".into(), namespace_spec(bytes_of(n, f)?)?);
            }
            3 => {
                m.insert("status".into(), namespace_status(bytes_of(n, f)?)?);
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(m)
}

fn namespace_spec(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        if n == 1 {
            push_str(&mut m, "finalizers", n, f)?;
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn namespace_status(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "phase", n, f)?,
            2 => push(&mut m, "conditions", namespace_condition(bytes_of(n, f)?)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn namespace_condition(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "type", n, f)?,
            2 => put_str(&mut m, "status", n, f)?,
            4 => put_time(&mut m, "lastTransitionTime", n, f)?,
            5 => put_str(&mut m, "reason", n, f)?,
            6 => put_str(&mut m, "message", n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn service_account(buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => {
                m.insert("metadata".into(), object_meta(bytes_of(n, f)?)?);
            }
            2 => push(&mut m, "secrets", object_reference(bytes_of(n, f)?)?),
            3 => push(
                &mut m,
                "imagePullSecrets",
                local_object_reference(bytes_of(n, f)?)?,
            ),
            4 => {
                m.insert("automountServiceAccountToken".into(), json!(bool_of(n, f)?));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(m)
}

/// `LocalObjectReference` {1 name}.
fn local_object_reference(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        if n == 1 {
            put_str(&mut m, "name", n, f)?;
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

/// `ObjectReference`.
fn object_reference(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "kind", n, f)?,
            2 => put_str(&mut m, "namespace", n, f)?,
            3 => put_str(&mut m, "name", n, f)?,
            4 => put_str(&mut m, "uid", n, f)?,
            5 => put_str(&mut m, "apiVersion", n, f)?,
            6 => put_str(&mut m, "resourceVersion", n, f)?,
            7 => put_str(&mut m, "fieldPath", n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

fn delete_options(buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => {
                m.insert("gracePeriodSeconds".into(), json!(int_of(n, f)?));
            }
            2 => {
                m.insert("preconditions".into(), preconditions(bytes_of(n, f)?)?);
            }
            3 => {
                m.insert("orphanDependents".into(), json!(bool_of(n, f)?));
            }
            4 => put_str(&mut m, "propagationPolicy", n, f)?,
            5 => push_str(&mut m, "dryRun", n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(m)
}

fn preconditions(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, f| {
        match n {
            1 => put_str(&mut m, "uid", n, f)?,
            2 => put_str(&mut m, "resourceVersion", n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(m))
}

// ---------------------------------------------------------------------------------------------
// Kinds decoded through field tables (what `kubectl create deployment|service|role|rolebinding`
// send). Unlike the hand-written messages above, these are strict: a field missing from the
// table is accepted only when it holds the proto default, otherwise decoding fails.

#[derive(Clone, Copy)]
enum Ty {
    /// string; empty is dropped
    Str,
    /// int32/int64; zero is dropped
    Int,
    /// optional (pointer) int; zero is kept
    OptInt,
    /// bool; false is dropped
    Bool,
    /// optional (pointer) bool; false is kept
    OptBool,
    StrList,
    StrMap,
    /// map<string, resource.Quantity {1 string}>
    QuantityMap,
    /// intstr.IntOrString {1 type, 2 intVal, 3 strVal}
    IntOrString,
    Meta,
    Msg(&'static Desc),
    MsgList(&'static Desc),
    /// Accepted and dropped (status on writes of the main resource).
    Ignore,
}

struct FieldDesc {
    num: u32,
    name: &'static str,
    ty: Ty,
}

struct Desc {
    name: &'static str,
    fields: &'static [FieldDesc],
}

const fn f(num: u32, name: &'static str, ty: Ty) -> FieldDesc {
    FieldDesc { num, name, ty }
}

static LABEL_SELECTOR_REQUIREMENT: Desc = Desc {
    name: "LabelSelectorRequirement",
    fields: &[
        f(1, "key", Ty::Str),
        f(2, "operator", Ty::Str),
        f(3, "values", Ty::StrList),
    ],
};

static LABEL_SELECTOR: Desc = Desc {
    name: "LabelSelector",
    fields: &[
        f(1, "matchLabels", Ty::StrMap),
        f(
            2,
            "matchExpressions",
            Ty::MsgList(&LABEL_SELECTOR_REQUIREMENT),
        ),
    ],
};

static CONTAINER_PORT: Desc = Desc {
    name: "ContainerPort",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "hostPort", Ty::Int),
        f(3, "containerPort", Ty::Int),
        f(4, "protocol", Ty::Str),
        f(5, "hostIP", Ty::Str),
    ],
};

static ENV_VAR: Desc = Desc {
    name: "EnvVar",
    fields: &[f(1, "name", Ty::Str), f(2, "value", Ty::Str)],
};

static RESOURCES: Desc = Desc {
    name: "ResourceRequirements",
    fields: &[
        f(1, "limits", Ty::QuantityMap),
        f(2, "requests", Ty::QuantityMap),
    ],
};

static CONTAINER: Desc = Desc {
    name: "Container",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "image", Ty::Str),
        f(3, "command", Ty::StrList),
        f(4, "args", Ty::StrList),
        f(5, "workingDir", Ty::Str),
        f(6, "ports", Ty::MsgList(&CONTAINER_PORT)),
        f(7, "env", Ty::MsgList(&ENV_VAR)),
        f(8, "resources", Ty::Msg(&RESOURCES)),
        f(13, "terminationMessagePath", Ty::Str),
        f(14, "imagePullPolicy", Ty::Str),
        f(16, "stdin", Ty::Bool),
        f(17, "stdinOnce", Ty::Bool),
        f(18, "tty", Ty::Bool),
        f(20, "terminationMessagePolicy", Ty::Str),
        f(24, "restartPolicy", Ty::Str),
    ],
};

static LOCAL_OBJECT_REFERENCE: Desc = Desc {
    name: "LocalObjectReference",
    fields: &[f(1, "name", Ty::Str)],
};

static POD_SPEC: Desc = Desc {
    name: "PodSpec",
    fields: &[
        f(2, "containers", Ty::MsgList(&CONTAINER)),
        f(3, "restartPolicy", Ty::Str),
        f(4, "terminationGracePeriodSeconds", Ty::OptInt),
        f(5, "activeDeadlineSeconds", Ty::OptInt),
        f(6, "dnsPolicy", Ty::Str),
        f(7, "nodeSelector", Ty::StrMap),
        f(8, "serviceAccountName", Ty::Str),
        f(9, "serviceAccount", Ty::Str),
        f(10, "nodeName", Ty::Str),
        f(11, "hostNetwork", Ty::Bool),
        f(12, "hostPID", Ty::Bool),
        f(13, "hostIPC", Ty::Bool),
        f(15, "imagePullSecrets", Ty::MsgList(&LOCAL_OBJECT_REFERENCE)),
        f(16, "hostname", Ty::Str),
        f(17, "subdomain", Ty::Str),
        f(19, "schedulerName", Ty::Str),
        f(20, "initContainers", Ty::MsgList(&CONTAINER)),
        f(21, "automountServiceAccountToken", Ty::OptBool),
        f(24, "priorityClassName", Ty::Str),
        f(25, "priority", Ty::OptInt),
        f(27, "shareProcessNamespace", Ty::OptBool),
        f(29, "runtimeClassName", Ty::Str),
        f(30, "enableServiceLinks", Ty::OptBool),
        f(31, "preemptionPolicy", Ty::Str),
        f(35, "setHostnameAsFQDN", Ty::OptBool),
        f(37, "hostUsers", Ty::OptBool),
    ],
};

static POD: Desc = Desc {
    name: "Pod",
    fields: &[
        f(1, "metadata", Ty::Meta),
        f(2, "spec", Ty::Msg(&POD_SPEC)),
        f(3, "status", Ty::Ignore),
    ],
};

static POD_TEMPLATE_SPEC: Desc = Desc {
    name: "PodTemplateSpec",
    fields: &[f(1, "metadata", Ty::Meta), f(2, "spec", Ty::Msg(&POD_SPEC))],
};

static ROLLING_UPDATE_DEPLOYMENT: Desc = Desc {
    name: "RollingUpdateDeployment",
    fields: &[
        f(1, "maxUnavailable", Ty::IntOrString),
        f(2, "maxSurge", Ty::IntOrString),
    ],
};

static DEPLOYMENT_STRATEGY: Desc = Desc {
    name: "DeploymentStrategy",
    fields: &[
        f(1, "type", Ty::Str),
        f(2, "rollingUpdate", Ty::Msg(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
};

static DEPLOYMENT_SPEC: Desc = Desc {
    name: "DeploymentSpec",
    fields: &[
        f(1, "replicas", Ty::OptInt),
        f(2, "selector", Ty::Msg(&LABEL_SELECTOR)),
        f(3, "template", Ty::Msg(&POD_TEMPLATE_SPEC)),
        f(4, "strategy", Ty::Msg(&DEPLOYMENT_STRATEGY)),
        f(5, "minReadySeconds", Ty::Int),
        f(6, "revisionHistoryLimit", Ty::OptInt),
        f(7, "paused", Ty::Bool),
        f(9, "progressDeadlineSeconds", Ty::OptInt),
    ],
};

static DEPLOYMENT: Desc = Desc {
    name: "Deployment",
    fields: &[
        f(1, "metadata", Ty::Meta),
        f(2, "spec", Ty::Msg(&DEPLOYMENT_SPEC)),
        f(3, "status", Ty::Ignore),
    ],
};

static SERVICE_PORT: Desc = Desc {
    name: "ServicePort",
    fields: &[
        f(1, "name", Ty::Str),
        f(2, "protocol", Ty::Str),
        f(3, "port", Ty::Int),
        f(4, "targetPort", Ty::IntOrString),
        f(5, "nodePort", Ty::Int),
        f(6, "appProtocol", Ty::Str),
    ],
};

static SERVICE_SPEC: Desc = Desc {
    name: "ServiceSpec",
    fields: &[
        f(1, "ports", Ty::MsgList(&SERVICE_PORT)),
        f(2, "selector", Ty::StrMap),
        f(3, "clusterIP", Ty::Str),
        f(4, "type", Ty::Str),
        f(5, "externalIPs", Ty::StrList),
        f(7, "sessionAffinity", Ty::Str),
        f(8, "loadBalancerIP", Ty::Str),
        f(9, "loadBalancerSourceRanges", Ty::StrList),
        f(10, "externalName", Ty::Str),
        f(11, "externalTrafficPolicy", Ty::Str),
        f(12, "healthCheckNodePort", Ty::Int),
        f(13, "publishNotReadyAddresses", Ty::Bool),
        f(17, "ipFamilyPolicy", Ty::Str),
        f(18, "clusterIPs", Ty::StrList),
        f(19, "ipFamilies", Ty::StrList),
        f(20, "allocateLoadBalancerNodePorts", Ty::OptBool),
        f(21, "loadBalancerClass", Ty::Str),
        f(22, "internalTrafficPolicy", Ty::Str),
        f(23, "trafficDistribution", Ty::Str),
    ],
};

static SERVICE: Desc = Desc {
    name: "Service",
    fields: &[
        f(1, "metadata", Ty::Meta),
        f(2, "spec", Ty::Msg(&SERVICE_SPEC)),
        f(3, "status", Ty::Ignore),
    ],
};

static POLICY_RULE: Desc = Desc {
    name: "PolicyRule",
    fields: &[
        f(1, "verbs", Ty::StrList),
        f(2, "apiGroups", Ty::StrList),
        f(3, "resources", Ty::StrList),
        f(4, "resourceNames", Ty::StrList),
        f(5, "nonResourceURLs", Ty::StrList),
    ],
};

static AGGREGATION_RULE: Desc = Desc {
    name: "AggregationRule",
    fields: &[f(1, "clusterRoleSelectors", Ty::MsgList(&LABEL_SELECTOR))],
};

/// Role and ClusterRole (field 3 exists only in ClusterRole).
static ROLE: Desc = Desc {
    name: "Role",
    fields: &[
        f(1, "metadata", Ty::Meta),
        f(2, "rules", Ty::MsgList(&POLICY_RULE)),
        f(3, "aggregationRule", Ty::Msg(&AGGREGATION_RULE)),
    ],
};

static SUBJECT: Desc = Desc {
    name: "Subject",
    fields: &[
        f(1, "kind", Ty::Str),
        f(2, "apiGroup", Ty::Str),
        f(3, "name", Ty::Str),
        f(4, "namespace", Ty::Str),
    ],
};

static ROLE_REF: Desc = Desc {
    name: "RoleRef",
    fields: &[
        f(1, "apiGroup", Ty::Str),
        f(2, "kind", Ty::Str),
        f(3, "name", Ty::Str),
    ],
};

/// RoleBinding and ClusterRoleBinding.
static ROLE_BINDING: Desc = Desc {
    name: "RoleBinding",
    fields: &[
        f(1, "metadata", Ty::Meta),
        f(2, "subjects", Ty::MsgList(&SUBJECT)),
        f(3, "roleRef", Ty::Msg(&ROLE_REF)),
    ],
};

/// True for a field value that equals the proto default (and so carries no information).
fn is_default(field: Field<'_>) -> bool {
    match field {
        Field::Varint(v) => v == 0,
        Field::Bytes(b) => b.is_empty(),
        Field::Fixed => false,
    }
}

fn table_message(desc: &Desc, buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut m = Map::new();
    for_each_field(buf, |n, field| {
        match desc.fields.iter().find(|d| d.num == n) {
            Some(d) => table_field(&mut m, d, n, field),
            None if is_default(field) => Ok(()),
            None => Err(ProtobufError::UnsupportedField {
                message: desc.name,
                field: n,
            }),
        }
    })?;
    Ok(m)
}

fn table_field(
    m: &mut Map<String, Value>,
    d: &FieldDesc,
    n: u32,
    field: Field<'_>,
) -> Result<(), ProtobufError> {
    let key = d.name;
    match d.ty {
        Ty::Str => put_str(m, key, n, field)?,
        Ty::Int => {
            let v = int_of(n, field)?;
            if v != 0 {
                m.insert(key.into(), json!(v));
            }
        }
        Ty::OptInt => {
            m.insert(key.into(), json!(int_of(n, field)?));
        }
        Ty::Bool => {
            if bool_of(n, field)? {
                m.insert(key.into(), json!(true));
            }
        }
        Ty::OptBool => {
            m.insert(key.into(), json!(bool_of(n, field)?));
        }
        Ty::StrList => push_str(m, key, n, field)?,
        Ty::StrMap => put_map_entry(m, key, n, field, utf8_value)?,
        Ty::QuantityMap => put_map_entry(m, key, n, field, quantity)?,
        Ty::IntOrString => {
            m.insert(key.into(), int_or_string(bytes_of(n, field)?)?);
        }
        Ty::Meta => {
            m.insert(key.into(), object_meta(bytes_of(n, field)?)?);
        }
        Ty::Msg(desc) => {
            m.insert(
                key.into(),
                Value::Object(table_message(desc, bytes_of(n, field)?)?),
            );
        }
        Ty::MsgList(desc) => {
            let item = table_message(desc, bytes_of(n, field)?)?;
            push(m, key, Value::Object(item));
        }
        Ty::Ignore => {}
    }
    Ok(())
}

fn quantity(buf: &[u8]) -> Result<Value, ProtobufError> {
    let mut q = String::new();
    for_each_field(buf, |n, f| {
        if n == 1 {
            q = string_of(n, f)?;
        }
        Ok(())
    })?;
    Ok(Value::String(q))
}

fn int_or_string(buf: &[u8]) -> Result<Value, ProtobufError> {
    let (mut is_string, mut int_val, mut str_val) = (false, 0i64, String::new());
    for_each_field(buf, |n, f| {
        match n {
            1 => is_string = int_of(n, f)? == 1,
            2 => int_val = int_of(n, f)?,
            3 => str_val = string_of(n, f)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(if is_string {
        json!(str_val)
    } else {
        json!(int_val)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A tiny proto encoder, enough to build the bodies clients send.
    #[derive(Default)]
    struct Enc(Vec<u8>);

    impl Enc {
        fn varint(&mut self, mut v: u64) {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(b);
                    return;
                }
                self.0.push(b | 0x80);
            }
        }
        fn key(&mut self, n: u32, wt: u64) {
            self.varint((u64::from(n) << 3) | wt);
        }
        fn bytes(mut self, n: u32, b: &[u8]) -> Self {
            self.key(n, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        fn str(self, n: u32, s: &str) -> Self {
            self.bytes(n, s.as_bytes())
        }
        fn msg(self, n: u32, m: Enc) -> Self {
            self.bytes(n, &m.0)
        }
        fn int(mut self, n: u32, v: i64) -> Self {
            self.key(n, 0);
            self.varint(v as u64);
            self
        }
        fn fixed64(mut self, n: u32) -> Self {
            self.key(n, 1);
            self.0.extend_from_slice(&[0; 8]);
            self
        }
        fn entry(self, n: u32, k: &str, v: &[u8]) -> Self {
            self.msg(n, Enc::default().str(1, k).bytes(2, v))
        }
    }

    fn wrap(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
        let env = Enc::default()
            .msg(1, Enc::default().str(1, api_version).str(2, kind))
            .msg(2, raw)
            .str(3, "")
            .str(4, "");
        let mut out = MAGIC.to_vec();
        out.extend(env.0);
        out
    }

    /// ObjectMeta the way gogo-protobuf writes it: every string present, empty ones included.
    fn helm_meta(name: &str) -> Enc {
        Enc::default()
            .str(1, name)
            .str(2, "")
            .str(3, "")
            .str(4, "")
            .str(5, "")
            .str(6, "")
            .int(7, 0)
            .msg(8, Enc::default())
            .entry(11, "name", b"osb")
            .entry(11, "owner", b"helm")
            .entry(11, "status", b"pending-install")
    }

    #[test]
    fn helm_release_secret() {
        let secret = Enc::default()
            .msg(1, helm_meta("sh.helm.release.v1.osb.v1"))
            .entry(2, "release", b"H4sI\x00\xff")
            .str(3, "helm.sh/release.v1");
        let v = decode(&wrap("v1", "Secret", secret)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "sh.helm.release.v1.osb.v1",
                    "labels": {"name": "osb", "owner": "helm", "status": "pending-install"}
                },
                "data": {"release": STANDARD.encode(b"H4sI\x00\xff")},
                "type": "helm.sh/release.v1"
            })
        );
    }

    #[test]
    fn secret_string_data_and_immutable() {
        let secret = Enc::default()
            .msg(1, helm_meta("s"))
            .entry(4, "k", b"plain")
            .int(5, 1);
        let v = decode(&wrap("v1", "Secret", secret)).unwrap();
        assert_eq!(v["stringData"], json!({"k": "plain"}));
        assert_eq!(v["immutable"], json!(true));
    }

    #[test]
    fn config_map_with_binary_data() {
        let meta = Enc::default()
            .str(1, "cm")
            .str(3, "default")
            .str(5, "")
            .msg(8, Enc::default().int(1, 1_700_000_000).int(2, 5))
            .entry(12, "note", b"hello")
            .str(14, "example.com/f")
            .msg(
                13,
                Enc::default()
                    .str(1, "Deployment")
                    .str(3, "web")
                    .str(4, "u-1")
                    .str(5, "apps/v1")
                    .int(6, 1)
                    .int(7, 0),
            );
        let cm = Enc::default()
            .msg(1, meta)
            .entry(2, "a", b"1")
            .entry(2, "b", b"")
            .entry(3, "bin", &[0, 1, 2])
            .int(4, 0);
        let v = decode(&wrap("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "cm",
                    "namespace": "default",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "annotations": {"note": "hello"},
                    "finalizers": ["example.com/f"],
                    "ownerReferences": [{
                        "kind": "Deployment", "name": "web", "uid": "u-1",
                        "apiVersion": "apps/v1", "controller": true, "blockOwnerDeletion": false
                    }]
                },
                "data": {"a": "1", "b": ""},
                "binaryData": {"bin": "AAEC"},
                "immutable": false
            })
        );
    }

    #[test]
    fn namespace_and_service_account() {
        let ns = Enc::default()
            .msg(1, helm_meta("team-a"))
            .msg(2, Enc::default().str(1, "kubernetes"))
            .msg(3, Enc::default().str(1, "Active"));
        let v = decode(&wrap("v1", "Namespace", ns)).unwrap();
        assert_eq!(v["metadata"]["name"], "team-a");
        assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(v["status"], json!({"phase": "Active"}));

        let sa = Enc::default()
            .msg(1, helm_meta("bot"))
            .msg(2, Enc::default().str(3, "tok"))
            .msg(3, Enc::default().str(1, "regcred"))
            .int(4, 0);
        let v = decode(&wrap("v1", "ServiceAccount", sa)).unwrap();
        assert_eq!(v["secrets"], json!([{"name": "tok"}]));
        assert_eq!(v["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(v["automountServiceAccountToken"], json!(false));
    }

    #[test]
    fn delete_options_full_and_empty() {
        let opts = Enc::default()
            .int(1, 0)
            .msg(2, Enc::default().str(1, "u-1").str(2, "42"))
            .int(3, 0)
            .str(4, "Foreground")
            .str(5, "All");
        let v = decode(&wrap("v1", "DeleteOptions", opts)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u-1", "resourceVersion": "42"},
                "orphanDependents": false,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"]
            })
        );
        let v = decode(&wrap("v1", "DeleteOptions", Enc::default())).unwrap();
        assert_eq!(v, json!({"apiVersion": "v1", "kind": "DeleteOptions"}));
    }

    #[test]
    fn negative_grace_period_and_unknown_fields_are_handled() {
        let opts = Enc::default()
            .int(1, -1)
            .fixed64(99)
            .int(98, 7)
            .str(97, "x");
        let v = decode(&wrap("v1", "DeleteOptions", opts)).unwrap();
        assert_eq!(v["gracePeriodSeconds"], json!(-1));
    }

    /// A Deployment the way `kubectl create deployment web --image=nginx --port=80 -r 2` sends
    /// it: gogo-protobuf writes every non-pointer field, defaults included.
    fn kubectl_deployment(pod_spec_extra: Enc) -> Vec<u8> {
        let labels = |e: Enc| e.entry(11, "app", b"web");
        let container = Enc::default()
            .str(1, "nginx")
            .str(2, "nginx")
            .str(5, "")
            .msg(
                6,
                Enc::default()
                    .str(1, "")
                    .int(2, 0)
                    .int(3, 80)
                    .str(4, "")
                    .str(5, ""),
            )
            .msg(8, Enc::default())
            .str(13, "")
            .str(14, "")
            .int(16, 0)
            .int(17, 0)
            .int(18, 0)
            .str(20, "");
        let mut pod_spec = Enc::default()
            .msg(2, container)
            .str(3, "")
            .str(6, "")
            .str(8, "")
            .str(9, "")
            .str(10, "")
            .int(11, 0)
            .int(12, 0)
            .int(13, 0)
            .str(16, "")
            .str(17, "")
            .str(19, "")
            .str(24, "");
        pod_spec.0.extend(pod_spec_extra.0);
        let spec = Enc::default()
            .int(1, 2)
            .msg(2, Enc::default().entry(1, "app", b"web"))
            .msg(
                3,
                Enc::default()
                    .msg(1, labels(Enc::default().str(1, "").msg(8, Enc::default())))
                    .msg(2, pod_spec),
            )
            .msg(4, Enc::default().str(1, ""))
            .int(5, 0)
            .int(7, 0);
        let deploy = Enc::default()
            .msg(1, labels(Enc::default().str(1, "web").str(3, "default")))
            .msg(2, spec)
            .msg(3, Enc::default().int(1, 0).int(2, 0));
        wrap("apps/v1", "Deployment", deploy)
    }

    #[test]
    fn kubectl_create_deployment() {
        let v = decode(&kubectl_deployment(Enc::default())).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "nginx", "image": "nginx",
                            "ports": [{"containerPort": 80}],
                            "resources": {}
                        }]}
                    },
                    "strategy": {}
                }
            })
        );
    }

    #[test]
    fn table_kinds_refuse_fields_they_do_not_know() {
        // PodSpec.volumes (1) with content: refused rather than dropped.
        let volumes = Enc::default().msg(1, Enc::default().str(1, "data"));
        assert_eq!(
            decode(&kubectl_deployment(volumes)),
            Err(ProtobufError::UnsupportedField {
                message: "PodSpec",
                field: 1
            })
        );
        // A zero-valued pointer field the table knows is kept.
        let v = decode(&kubectl_deployment(Enc::default().int(4, 0))).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            json!(0)
        );
        // An env var from a secret (valueFrom, 3) is refused too.
        let pod = Enc::default().msg(
            2,
            Enc::default().msg(
                2,
                Enc::default().str(1, "c").msg(
                    7,
                    Enc::default()
                        .str(1, "X")
                        .msg(3, Enc::default().str(1, "k")),
                ),
            ),
        );
        assert_eq!(
            decode(&wrap("v1", "Pod", pod)),
            Err(ProtobufError::UnsupportedField {
                message: "EnvVar",
                field: 3
            })
        );
    }

    #[test]
    fn kubectl_create_service_role_and_binding() {
        let port = Enc::default()
            .str(1, "80-8080")
            .str(2, "TCP")
            .int(3, 80)
            .msg(4, Enc::default().int(1, 0).int(2, 8080).str(3, ""))
            .int(5, 0);
        let named = Enc::default()
            .str(1, "http")
            .int(3, 81)
            .msg(4, Enc::default().int(1, 1).int(2, 0).str(3, "web"));
        let svc = Enc::default()
            .msg(1, Enc::default().str(1, "my"))
            .msg(
                2,
                Enc::default()
                    .msg(1, port)
                    .msg(1, named)
                    .entry(2, "app", b"my")
                    .str(3, "")
                    .str(4, "ClusterIP"),
            )
            .msg(3, Enc::default().msg(1, Enc::default()));
        let v = decode(&wrap("v1", "Service", svc)).unwrap();
        assert_eq!(
            v["spec"],
            json!({
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "http", "port": 81, "targetPort": "web"}
                ],
                "selector": {"app": "my"},
                "type": "ClusterIP"
            })
        );
        assert!(v.get("status").is_none());

        let rule = Enc::default()
            .str(1, "get")
            .str(1, "list")
            .str(2, "")
            .str(3, "pods");
        let role = Enc::default()
            .msg(1, Enc::default().str(1, "reader"))
            .msg(2, rule);
        let v = decode(&wrap("rbac.authorization.k8s.io/v1", "ClusterRole", role)).unwrap();
        assert_eq!(v["kind"], "ClusterRole");
        assert_eq!(
            v["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
        );

        let binding = Enc::default()
            .msg(1, Enc::default().str(1, "rb"))
            .msg(
                2,
                Enc::default()
                    .str(1, "ServiceAccount")
                    .str(2, "")
                    .str(3, "bot")
                    .str(4, "default"),
            )
            .msg(
                3,
                Enc::default()
                    .str(1, "rbac.authorization.k8s.io")
                    .str(2, "Role")
                    .str(3, "reader"),
            );
        let v = decode(&wrap(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            binding,
        ))
        .unwrap();
        assert_eq!(
            v["subjects"],
            json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}])
        );
        assert_eq!(
            v["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
        );
    }

    #[test]
    fn errors() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::BadMagic));
        assert_eq!(
            decode(&wrap("apps/v1", "StatefulSet", Enc::default())),
            Err(ProtobufError::UnsupportedKind("StatefulSet".into()))
        );
        let full = wrap("v1", "Secret", Enc::default().msg(1, helm_meta("x")));
        assert_eq!(
            decode(&full[..full.len() - 1]),
            Err(ProtobufError::Truncated)
        );
        // Cutting inside the object message is always detected.
        for cut in 30..full.len() - 4 {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut}");
        }
        // Wire type 3 (start group) is not supported.
        let mut bad = MAGIC.to_vec();
        bad.push(0x0b);
        assert_eq!(decode(&bad), Err(ProtobufError::BadWireType(3)));
        let mut overlong = MAGIC.to_vec();
        overlong.extend([
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ]);
        assert_eq!(decode(&overlong), Err(ProtobufError::VarintOverflow));
    }

    #[test]
    fn content_type_detection() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=x"
        ));
        assert!(!is_protobuf("application/json"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&body);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend(&body);
            let _ = decode(&with_magic);
        }

        #[test]
        fn random_object_payloads_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            for kind in ["Secret", "ConfigMap", "Namespace", "ServiceAccount", "DeleteOptions",
                         "Deployment", "Service", "Pod", "Role", "RoleBinding"] {
                let mut out = MAGIC.to_vec();
                out.extend(Enc::default().msg(1, Enc::default().str(1, "v1").str(2, kind)).bytes(2, &raw).0);
                let _ = decode(&out);
            }
        }
    }
}
