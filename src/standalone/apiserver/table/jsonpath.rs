//! The subset of kubectl JSONPath that printer columns use: `.a.b`, `['a.b']`, `[0]`, `[-1]`,
//! `[*]`, `.*`, `[1:3]`, `..name` and filters such as `[?(@.type=="Ready")]`.

use std::cmp::Ordering;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("invalid JSONPath {path:?}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A parsed JSONPath expression.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Child(String),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    /// `..`: the current values and all their descendants.
    Descend,
    Filter(Box<Filter>),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    lhs: Vec<Step>,
    /// None: the filter only tests that `lhs` exists.
    cmp: Option<(Op, Operand)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Literal(Value),
    Path(Vec<Step>),
}

impl JsonPath {
    /// Parses `.a.b`, `{.a.b}` or `$.a.b`.
    pub fn parse(path: &str) -> Result<Self, JsonPathError> {
        let err = |reason: &str| JsonPathError::Invalid {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let mut text = path.trim();
        if let Some(inner) = text.strip_prefix('{') {
            text = inner
                .strip_suffix('}')
                .ok_or_else(|| err("unclosed {"))?
                .trim();
        }
        let text = text.strip_prefix('$').unwrap_or(text);
        let steps = parse_steps(text).map_err(|r| err(&r))?;
        Ok(Self { steps })
    }

    /// Every value the path selects in `root`, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, root)
    }
}

fn parse_steps(text: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    steps.push(Step::Descend);
                    i += 1;
                }
                match chars.get(i) {
                    None => {
                        if matches!(steps.last(), Some(Step::Descend)) {
                            return Err("path ends with ..".into());
                        }
                    }
                    Some('*') => {
                        steps.push(Step::Wildcard);
                        i += 1;
                    }
                    Some('[') => {}
                    Some(_) => {
                        let (name, next) = identifier(&chars, i);
                        if name.is_empty() {
                            return Err(format!("empty field name at {i}"));
                        }
                        steps.push(Step::Child(name));
                        i = next;
                    }
                }
            }
            '[' => {
                let end = closing_bracket(&chars, i)?;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(bracket_step(inner.trim())?);
                i = end + 1;
            }
            c if i == 0 && (c.is_alphanumeric() || c == '_') => {
                // Tolerate a missing leading dot (`status.phase`).
                let (name, next) = identifier(&chars, i);
                steps.push(Step::Child(name));
                i = next;
            }
            c => return Err(format!("unexpected {c:?} at {i}")),
        }
    }
    Ok(steps)
}

fn identifier(chars: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
        i += 1;
    }
    (
        chars[start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_string(),
        i,
    )
}

/// Index of the `]` closing the `[` at `open`, skipping quoted text and nested brackets.
fn closing_bracket(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return if c == ']' {
                        Ok(i)
                    } else {
                        Err("unbalanced )".into())
                    };
                }
            }
            _ => {}
        }
    }
    Err("unclosed [".into())
}

fn bracket_step(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(rest) = inner.strip_prefix('?') {
        let body = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or("filter must be ?(...)")?;
        return Ok(Step::Filter(Box::new(parse_filter(body.trim())?)));
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Child(name));
    }
    if let Some((a, b)) = inner.split_once(':') {
        let bound = |s: &str| -> Result<Option<i64>, String> {
            let s = s.split(':').next().unwrap_or_default().trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("bad slice bound {s:?}"))
            }
        };
        return Ok(Step::Slice(bound(a)?, bound(b)?));
    }
    inner
        .parse()
        .map(Step::Index)
        .map_err(|_| format!("unsupported [{inner}]"))
}

fn unquote(s: &str) -> Option<String> {
    let first = s.chars().next()?;
    if (first == '"' || first == '\'') && s.len() >= 2 && s.ends_with(first) {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

const OPS: [(&str, Op); 6] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

fn parse_filter(body: &str) -> Result<Filter, String> {
    let (lhs_text, cmp) = match find_operator(body) {
        Some((at, op, len)) => (&body[..at], Some((op, body[at + len..].trim()))),
        None => (body, None),
    };
    let lhs = filter_path(lhs_text.trim()).ok_or("filter must test @.<field>")?;
    let cmp = match cmp {
        None => None,
        Some((op, rhs)) => Some((op, operand(rhs)?)),
    };
    Ok(Filter { lhs, cmp })
}

/// The first comparison operator outside quotes: (byte offset, op, operator length).
fn find_operator(body: &str) -> Option<(usize, Op, usize)> {
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {
                if let Some((text, op)) = OPS.iter().find(|(t, _)| body[i..].starts_with(t)) {
                    return Some((i, *op, text.len()));
                }
            }
        }
    }
    None
}

fn filter_path(text: &str) -> Option<Vec<Step>> {
    let rest = text.strip_prefix('@')?;
    parse_steps(rest).ok()
}

fn operand(text: &str) -> Result<Operand, String> {
    if let Some(path) = filter_path(text) {
        return Ok(Operand::Path(path));
    }
    if let Some(s) = unquote(text) {
        return Ok(Operand::Literal(Value::String(s)));
    }
    serde_json::from_str(text)
        .map(Operand::Literal)
        .map_err(|_| format!("bad filter operand {text:?}"))
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        current = current.into_iter().flat_map(|v| apply(step, v)).collect();
    }
    current
}

fn apply<'a>(step: &Step, v: &'a Value) -> Vec<&'a Value> {
    match step {
        Step::Child(name) => v.get(name.as_str()).into_iter().collect(),
        Step::Wildcard => match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => Vec::new(),
        },
        Step::Index(i) => v
            .as_array()
            .and_then(|a| resolve_index(*i, a.len()).and_then(|i| a.get(i)))
            .into_iter()
            .collect(),
        Step::Slice(start, end) => v
            .as_array()
            .map_or_else(Vec::new, |a| slice(a, *start, *end)),
        Step::Descend => {
            let mut out = Vec::new();
            descendants(v, &mut out);
            out
        }
        Step::Filter(f) => v.as_array().map_or_else(Vec::new, |a| {
            a.iter().filter(|item| matches_filter(f, item)).collect()
        }),
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i).ok()
}

fn slice(a: &[Value], start: Option<i64>, end: Option<i64>) -> Vec<&Value> {
    let len = a.len() as i64;
    let clamp = |i: i64| (if i < 0 { len + i } else { i }).clamp(0, len) as usize;
    let s = start.map_or(0, clamp);
    let e = end.map_or(a.len(), clamp);
    if s >= e {
        Vec::new()
    } else {
        a[s..e].iter().collect()
    }
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(a) => a.iter().for_each(|c| descendants(c, out)),
        Value::Object(m) => m.values().for_each(|c| descendants(c, out)),
        _ => {}
    }
}

fn matches_filter(f: &Filter, item: &Value) -> bool {
    let lefts = eval(&f.lhs, item);
    let Some((op, rhs)) = &f.cmp else {
        return !lefts.is_empty();
    };
    let rights: Vec<&Value> = match rhs {
        Operand::Literal(v) => vec![v],
        Operand::Path(p) => eval(p, item),
    };
    lefts
        .iter()
        .any(|l| rights.iter().any(|r| compare(*op, l, r)))
}

fn compare(op: Op, l: &Value, r: &Value) -> bool {
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ if l == r => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        Op::Eq => ord == Some(Ordering::Equal),
        Op::Ne => ord != Some(Ordering::Equal),
        Op::Lt => ord == Some(Ordering::Less),
        Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ord == Some(Ordering::Greater),
        Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(v)
            .into_iter()
            .cloned()
            .collect()
    }

    fn doc() -> Value {
        json!({
            "metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"containers": [{"name": "a", "image": "ia"}, {"name": "b", "image": "ib"}]},
            "status": {
                "replicas": 3,
                "conditions": [
                    {"type": "Ready", "status": "True", "n": 1},
                    {"type": "Synced", "status": "False", "n": 5}
                ]
            }
        })
    }

    #[test]
    fn fields_indexes_and_wildcards() {
        let d = doc();
        assert_eq!(find(".status.replicas", &d), vec![json!(3)]);
        assert_eq!(find("{.status.replicas}", &d), vec![json!(3)]);
        assert_eq!(find("$.status.replicas", &d), vec![json!(3)]);
        assert_eq!(find("status.replicas", &d), vec![json!(3)]);
        assert_eq!(find(".spec.containers[0].name", &d), vec![json!("a")]);
        assert_eq!(find(".spec.containers[-1].name", &d), vec![json!("b")]);
        assert_eq!(
            find(".spec.containers[*].image", &d),
            vec![json!("ia"), json!("ib")]
        );
        assert_eq!(
            find(".spec.containers.*.name", &d),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(find(".spec.containers[0:1].name", &d), vec![json!("a")]);
        assert_eq!(find(".spec.containers[1:].name", &d), vec![json!("b")]);
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &d),
            vec![json!("x")]
        );
        assert_eq!(
            find(".metadata.labels[\"app.kubernetes.io/name\"]", &d),
            vec![json!("x")]
        );
        assert_eq!(find("..image", &d), vec![json!("ia"), json!("ib")]);
        assert_eq!(find(".", &d), vec![d.clone()]);
    }

    #[test]
    fn missing_values_select_nothing() {
        let d = doc();
        assert!(find(".status.nope", &d).is_empty());
        assert!(find(".spec.containers[7].name", &d).is_empty());
        assert!(find(".status.replicas.x", &d).is_empty());
        assert!(find(".status.replicas[0]", &d).is_empty());
    }

    #[test]
    fn filters() {
        let d = doc();
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status", &d),
            vec![json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type == 'Synced')].status", &d),
            vec![json!("False")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!=\"Ready\")].type", &d),
            vec![json!("Synced")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n > 2)].type", &d),
            vec![json!("Synced")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n <= 1)].type", &d),
            vec![json!("Ready")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n)].n", &d),
            vec![json!(1), json!(5)]
        );
        assert!(find(".status.conditions[?(@.type==\"Gone\")].status", &d).is_empty());
        assert!(find(".status.conditions[?(@.missing)]", &d).is_empty());
        // Operators inside quoted literals do not split the expression.
        let tricky = json!({"a": [{"k": "x==y"}]});
        assert_eq!(find(".a[?(@.k==\"x==y\")].k", &tricky), vec![json!("x==y")]);
    }

    #[test]
    fn invalid_paths_are_errors() {
        for bad in [
            ".a[",
            ".a[?(@.b==)]",
            ".a[x]",
            "{.a",
            ".a..",
            "#",
            ".a[?(b)]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,40}") {
            if let Ok(p) = JsonPath::parse(&s) {
                let _ = p.find(&doc());
            }
        }
    }
}
