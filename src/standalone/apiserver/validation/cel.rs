//! CEL `x-kubernetes-validations` rules of custom resources (see the module doc of
//! [`super`] for what is supported).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use cel::objects::{Key, OptionalValue};
use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

use super::schema::{
    additional, child, correlate_item, correlated_fields, index, items, properties,
};
use super::status::FieldCause;
use super::{duplicate, duplicate_omitted, forbidden, invalid, invalid_omitted, required};

/// Evaluates every rule of the schema over `obj`; `old` is the stored object on updates.
/// Returns the causes and the warnings: a failed rule that does not use `oldSelf` on a node the
/// update left unchanged is only a warning (`field: message`), as with the server's ratcheting.
pub fn validate(
    schema: &Value,
    obj: &Value,
    old: Option<&Value>,
) -> (Vec<FieldCause>, Vec<String>) {
    COMPILED.with(|cell| {
        let mut cached = cell.borrow_mut();
        let compiled = cached.get_or_insert_with(|| Compiled {
            env: Arc::new(environment()),
            programs: HashMap::new(),
        });
        if compiled.programs.len() > MAX_CACHED_PROGRAMS {
            compiled.programs.clear();
        }
        let mut walker = Walker {
            env: compiled.env.clone(),
            programs: std::mem::take(&mut compiled.programs),
            out: Vec::new(),
            warnings: Vec::new(),
        };
        let root = root_view(obj);
        let old_root = old.map(root_view);
        walker.visit(&root, old_root.as_ref(), schema, "");
        compiled.programs = walker.programs;
        (walker.out, walker.warnings)
    })
}

/// Building the environment and compiling rules cost far more than evaluating them, so both
/// are kept per thread (programs are not `Send`), keyed by the rule's source.
struct Compiled {
    env: Arc<Env>,
    programs: HashMap<String, Result<Rc<Program>, String>>,
}

/// More distinct rules than any sane set of CRDs has; past it the cache starts over.
const MAX_CACHED_PROGRAMS: usize = 4096;

thread_local! {
    static COMPILED: std::cell::RefCell<Option<Compiled>> = const { std::cell::RefCell::new(None) };
}

fn environment() -> Env {
    let mut env = Env::stdlib();
    // Each extension only declares functions; a failure leaves the standard library usable.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let _ = env.add_extension(cel::extensions::math);
    env
}

/// At the root, `self.metadata` only has `name` and `generateName`, as on the real server.
fn root_view(obj: &Value) -> Value {
    let mut view = obj.clone();
    if let Some(meta) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| k == "name" || k == "generateName");
    }
    view
}

struct Walker {
    env: Arc<Env>,
    /// Compiled rules by source (borrowed from the thread's cache for this request).
    programs: HashMap<String, Result<Rc<Program>, String>>,
    out: Vec<FieldCause>,
    warnings: Vec<String>,
}

/// One entry of `x-kubernetes-validations`.
struct Rule<'a> {
    rule: &'a str,
    message: Option<&'a str>,
    message_expression: Option<&'a str>,
    reason: &'a str,
    field_path: Option<&'a str>,
    optional_old_self: bool,
}

impl<'a> Rule<'a> {
    fn parse(v: &'a Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
        Some(Rule {
            rule: s("rule")?,
            message: s("message"),
            message_expression: s("messageExpression"),
            reason: s("reason").unwrap_or("FieldValueInvalid"),
            field_path: s("fieldPath"),
            optional_old_self: v
                .get("optionalOldSelf")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The message, else the rule: how the server names a rule in its errors.
    fn error_string(&self) -> &str {
        self.message.unwrap_or(self.rule).trim()
    }

    fn default_message(&self) -> String {
        match self.message {
            Some(m) => m.trim().to_string(),
            None => format!("failed rule: {}", self.error_string()),
        }
    }
}

enum Outcome {
    Pass,
    Fail,
    NotBool,
    Overload,
    Error(String),
}

impl Walker {
    fn visit(&mut self, node: &Value, old: Option<&Value>, schema: &Value, path: &str) {
        if node.is_null() || schema.is_null() {
            return;
        }
        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for rule in rules.iter().filter_map(Rule::parse) {
                self.check_rule(&rule, node, old.filter(|o| !o.is_null()), schema, path);
            }
        }
        match node {
            Value::Object(map) => {
                let props = properties(schema);
                let addl = additional(schema);
                let old = correlated_fields(old, schema);
                for (k, v) in map {
                    let old_child = old.and_then(|o| o.get(k));
                    if let Some(sub) = props.and_then(|p| p.get(k)) {
                        self.visit(v, old_child, sub, &child(path, k));
                    } else if let Some(sub) = addl {
                        self.visit(v, old_child, sub, &format!("{path}[{k}]"));
                    }
                }
            }
            Value::Array(list) => {
                let Some(item_schema) = items(schema) else {
                    return;
                };
                for (i, item) in list.iter().enumerate() {
                    let old_item = correlate_item(item, old, schema);
                    self.visit(item, old_item, item_schema, &index(path, i));
                }
            }
            _ => {}
        }
    }

    fn check_rule(
        &mut self,
        rule: &Rule,
        node: &Value,
        old: Option<&Value>,
        schema: &Value,
        path: &str,
    ) {
        let type_name = Value::from(schema_type(schema));
        let program = match self.program(rule.rule) {
            Ok(p) => p,
            Err(e) => {
                let detail = format!("rule compile error: compilation failed: {e}");
                self.out.push(invalid(path, &type_name, &detail));
                return;
            }
        };
        let transition = program.references().has_variable("oldSelf");
        if transition && old.is_none() && !rule.optional_old_self {
            return;
        }
        let mut ctx = Context::with_env(self.env.clone());
        ctx.add_variable_from_value("self", to_cel(node, schema));
        if transition || rule.optional_old_self {
            ctx.add_variable_from_value("oldSelf", old_self(old, schema, rule.optional_old_self));
        }
        let detail = match evaluate(&program, &ctx) {
            Outcome::Pass => return,
            Outcome::Fail => {
                let message = self.message(rule, &ctx);
                let field = rule_field(path, rule.field_path);
                let cause = cause_for(rule.reason, &field, node, schema, &message);
                if !transition && old.is_some_and(|o| o == node) {
                    self.warnings
                        .push(format!("{}: {}", cause.field, cause.message));
                } else {
                    self.out.push(cause);
                }
                return;
            }
            Outcome::NotBool => {
                "rule compile error: compilation failed: cel expression must evaluate to a bool"
                    .to_string()
            }
            Outcome::Overload => format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                rule.error_string()
            ),
            Outcome::Error(e) => format!("{e} evaluating rule: {}", rule.error_string()),
        };
        self.out.push(invalid(path, &type_name, &detail));
    }

    fn program(&mut self, src: &str) -> Result<Rc<Program>, String> {
        let env = &self.env;
        self.programs
            .entry(src.to_string())
            .or_insert_with(|| compile(env, src).map(Rc::new))
            .clone()
    }

    /// `messageExpression` when it yields a non-empty single-line string, else `message`.
    fn message(&mut self, rule: &Rule, ctx: &Context) -> String {
        let from_expression = rule
            .message_expression
            .and_then(|src| self.program(src).ok())
            .and_then(|p| catch_unwind(AssertUnwindSafe(|| p.execute(ctx))).ok())
            .and_then(|r| r.ok());
        match from_expression {
            Some(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                s.trim().to_string()
            }
            _ => rule.default_message(),
        }
    }
}

fn compile(env: &Env, src: &str) -> Result<Program, String> {
    match catch_unwind(AssertUnwindSafe(|| env.compile(src))) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the rule could not be parsed".to_string()),
    }
}

fn evaluate(program: &Program, ctx: &Context) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| program.execute(ctx))) {
        Ok(Ok(cel::Value::Bool(true))) => Outcome::Pass,
        Ok(Ok(cel::Value::Bool(false))) => Outcome::Fail,
        Ok(Ok(_)) => Outcome::NotBool,
        Ok(Err(ExecutionError::NoSuchOverload(_))) => Outcome::Overload,
        Ok(Err(e)) => Outcome::Error(execution_error(&e)),
        Err(_) => Outcome::Error("the rule could not be evaluated".to_string()),
    }
}

/// cel-go's wording for the errors users meet most (`no such key: foo`).
fn execution_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        other => other.to_string(),
    }
}

/// The cause of a failed rule: the node's value is shown, except for objects and arrays.
fn cause_for(reason: &str, field: &str, node: &Value, schema: &Value, message: &str) -> FieldCause {
    let omitted = matches!(schema_type(schema), "object" | "array");
    match reason {
        "FieldValueForbidden" => forbidden(field, message),
        "FieldValueRequired" => required(field, message),
        "FieldValueDuplicate" if omitted => duplicate_omitted(field),
        "FieldValueDuplicate" => duplicate(field, node),
        _ if omitted => invalid_omitted(field, message),
        _ => invalid(field, node, message),
    }
}

/// The schema's `type` as the server reports it in CEL causes (`object`, `string`, `""`).
fn schema_type(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn old_self(old: Option<&Value>, schema: &Value, optional: bool) -> cel::Value {
    let value = old.map(|o| to_cel(o, schema));
    if !optional {
        return value.unwrap_or(cel::Value::Null);
    }
    let opt = match value {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    };
    cel::Value::Opaque(Arc::new(opt))
}

/// `path` plus a rule's `fieldPath` (`.a.b`, `['a.b']`, `[0]`).
fn rule_field(path: &str, field_path: Option<&str>) -> String {
    let Some(fp) = field_path else {
        return path.to_string();
    };
    let mut out = path.to_string();
    let mut rest = fp;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else { break };
            out = child(&out, &r[..end]);
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            out = format!("{out}[{}]", &r[..end]);
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out = child(&out, &r[..end]);
            rest = &r[end..];
        } else {
            return child(path, fp);
        }
    }
    out
}

/// JSON to CEL guided by the schema: integers are `int` (but `double` under `type: number`),
/// `date-time` strings are timestamps.
pub(crate) fn to_cel(v: &Value, schema: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => number_to_cel(n, schema_type(schema) == "number"),
        Value::String(s) => string_to_cel(s, schema),
        Value::Array(list) => {
            let item_schema = items(schema).unwrap_or(&Value::Null);
            cel::Value::List(Arc::new(
                list.iter().map(|i| to_cel(i, item_schema)).collect(),
            ))
        }
        Value::Object(map) => {
            let props = properties(schema);
            let addl = additional(schema);
            let mut out: HashMap<Key, cel::Value> = HashMap::with_capacity(map.len());
            for (k, val) in map {
                let sub = props
                    .and_then(|p| p.get(k))
                    .or(addl)
                    .unwrap_or(&Value::Null);
                out.insert(Key::from(k.clone()), to_cel(val, sub));
            }
            cel::Value::from(out)
        }
    }
}

fn number_to_cel(n: &serde_json::Number, as_double: bool) -> cel::Value {
    if as_double {
        return cel::Value::Float(n.as_f64().unwrap_or(f64::NAN));
    }
    if let Some(i) = n.as_i64() {
        cel::Value::Int(i)
    } else if let Some(u) = n.as_u64() {
        cel::Value::UInt(u)
    } else {
        cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn string_to_cel(s: &str, schema: &Value) -> cel::Value {
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(s)
    {
        return cel::Value::Timestamp(t);
    }
    cel::Value::String(Arc::new(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, obj: Value, old: Option<Value>) -> Vec<(String, String, String)> {
        validate(&schema, &obj, old.as_ref())
            .0
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect()
    }

    fn with_rules(rules: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "s": {"type": "string"},
                           "n": {"type": "number"}, "t": {"type": "string", "format": "date-time"},
                           "m": {"type": "object", "additionalProperties": {"type": "string"}},
                           "l": {"type": "array", "items": {"type": "string"}}},
            "x-kubernetes-validations": rules}}})
    }

    #[test]
    fn integers_compare_as_ints_and_has_works() {
        let s = with_rules(json!([
            {"rule": "self.a <= self.b"},
            {"rule": "has(self.m) ? self.m.size() == 1 : true"},
            {"rule": "!has(self.s) || self.s.startsWith('x')"},
            {"rule": "self.n > 0.5"},
            {"rule": "self.l.all(x, x.size() > 0) && size(self.l) == 2"},
            {"rule": "self.t < timestamp('2030-01-01T00:00:00Z')"},
            {"rule": "'k' in self.m && self.m.k.matches('^v+$')"},
            {"rule": "self.s.lowerAscii() == 'xy'"}
        ]));
        let ok = json!({"spec": {"a": 1, "b": 2, "s": "xY", "n": 1, "m": {"k": "vv"}, "l": ["a", "b"], "t": "2026-01-01T00:00:00Z"}});
        assert_eq!(run(s.clone(), ok, None), vec![]);
        let bad = json!({"spec": {"a": 3, "b": 2, "s": "xy", "n": 1, "m": {"k": "vv"}, "l": ["a", "b"], "t": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            run(s, bad, None),
            vec![(
                "spec".into(),
                "FieldValueInvalid".into(),
                "Invalid value: failed rule: self.a <= self.b".into()
            )]
        );
    }

    #[test]
    fn messages_reasons_and_field_paths() {
        let s = with_rules(json!([
            {"rule": "self.a > 0", "message": "a must be positive", "fieldPath": ".a"},
            {"rule": "self.a > 1", "messageExpression": "'a is ' + string(self.a)", "reason": "FieldValueForbidden"},
            {"rule": "self.a > 2", "reason": "FieldValueRequired", "fieldPath": "['m'].x"},
            {"rule": "self.a > 3", "reason": "FieldValueDuplicate", "fieldPath": ".l[1]"}
        ]));
        let e = run(s, json!({"spec": {"a": 0}}), None);
        assert_eq!(
            e,
            vec![
                (
                    "spec.a".into(),
                    "FieldValueInvalid".into(),
                    "Invalid value: a must be positive".into()
                ),
                (
                    "spec".into(),
                    "FieldValueForbidden".into(),
                    "Forbidden: a is 0".into()
                ),
                (
                    "spec.m.x".into(),
                    "FieldValueRequired".into(),
                    "Required value: failed rule: self.a > 2".into()
                ),
                (
                    "spec.l[1]".into(),
                    "FieldValueDuplicate".into(),
                    "Duplicate value".into()
                ),
            ]
        );
    }

    #[test]
    fn bad_rules_never_panic() {
        let s = with_rules(
            json!([{"rule": "self.a <="}, {"rule": "self.zz == 1"}, {"rule": "self.a"}]),
        );
        let e = run(s, json!({"spec": {"a": 0}}), None);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].2
                .starts_with("Invalid value: \"object\": rule compile error: compilation failed: "),
            "{}",
            e[0].2
        );
        assert_eq!(
            e[1].2,
            "Invalid value: \"object\": no such key: zz evaluating rule: self.zz == 1"
        );
        assert!(
            e[2].2.ends_with("cel expression must evaluate to a bool"),
            "{}",
            e[2].2
        );
    }

    #[test]
    fn transition_rules_need_the_old_node() {
        let s =
            with_rules(json!([{"rule": "self.a >= oldSelf.a", "message": "a may not decrease"}]));
        assert!(run(s.clone(), json!({"spec": {"a": 1}}), None).is_empty());
        assert!(
            run(
                s.clone(),
                json!({"spec": {"a": 1}}),
                Some(json!({"metadata": {}}))
            )
            .is_empty()
        );
        assert!(
            run(
                s.clone(),
                json!({"spec": {"a": 2}}),
                Some(json!({"spec": {"a": 1}}))
            )
            .is_empty()
        );
        assert_eq!(
            run(
                s,
                json!({"spec": {"a": 0}}),
                Some(json!({"spec": {"a": 1}}))
            )[0]
            .2,
            "Invalid value: a may not decrease"
        );
        let s = with_rules(
            json!([{"rule": "!oldSelf.hasValue() || self.a >= oldSelf.value().a", "optionalOldSelf": true}]),
        );
        assert!(run(s.clone(), json!({"spec": {"a": 0}}), None).is_empty());
        assert_eq!(
            run(
                s,
                json!({"spec": {"a": 0}}),
                Some(json!({"spec": {"a": 1}}))
            )
            .len(),
            1
        );
    }

    #[test]
    fn list_map_items_correlate_by_key() {
        let s = json!({"type": "object", "properties": {"l": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
                      "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v", "message": "immutable"}]}}}});
        let old = json!({"l": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]});
        assert!(
            run(
                s.clone(),
                json!({"l": [{"name": "b", "v": 2}, {"name": "a", "v": 1}, {"name": "c", "v": 9}]}),
                Some(old.clone())
            )
            .is_empty()
        );
        let e = run(s, json!({"l": [{"name": "b", "v": 3}]}), Some(old));
        assert_eq!(e[0].0, "l[0]");
    }

    #[test]
    fn map_values_use_key_paths_and_atomic_maps_have_no_old_values() {
        let s = json!({"type": "object", "properties": {
            "m": {"type": "object", "additionalProperties": {"type": "string",
                  "x-kubernetes-validations": [{"rule": "self != 'bad'", "messageExpression": "'  got ' + self + '  '"}]}},
            "a": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
                  "v": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}});
        assert_eq!(
            run(s.clone(), json!({"m": {"k": "bad"}}), None),
            vec![(
                "m[k]".into(),
                "FieldValueInvalid".into(),
                "Invalid value: \"bad\": got bad".into()
            )]
        );
        assert!(run(s, json!({"a": {"v": "x"}}), Some(json!({"a": {"v": "y"}}))).is_empty());
    }

    #[test]
    fn root_rules_see_name_only_metadata() {
        let s = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('p') && !has(self.metadata.labels)"}]});
        assert!(
            run(
                s.clone(),
                json!({"metadata": {"name": "p1", "labels": {"a": "b"}}}),
                None
            )
            .is_empty()
        );
        assert_eq!(run(s, json!({"metadata": {"name": "x"}}), None).len(), 1);
    }

    #[test]
    fn unchanged_nodes_only_warn() {
        let s = with_rules(json!([{"rule": "self.a > 0", "message": "a must be positive"}]));
        let obj = json!({"spec": {"a": 0}});
        let (causes, warnings) = validate(&s, &obj, Some(&obj));
        assert!(causes.is_empty());
        assert_eq!(
            warnings,
            vec!["spec: Invalid value: a must be positive".to_string()]
        );
        let (causes, _) = validate(&s, &obj, Some(&json!({"spec": {"a": 0, "b": 1}})));
        assert_eq!(causes.len(), 1);
    }

    #[test]
    fn field_paths() {
        assert_eq!(rule_field("spec", None), "spec");
        assert_eq!(rule_field("spec", Some(".a.b")), "spec.a.b");
        assert_eq!(rule_field("spec", Some("['a.b'][2]")), "spec.a.b[2]");
        assert_eq!(rule_field("", Some(".a")), "a");
    }
}
