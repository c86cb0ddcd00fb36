//! Label and field selectors, parsed and matched as apimachinery's `labels` and `fields` do,
//! with the server's error texts.

use std::collections::BTreeMap;

use serde_json::Value;

use super::go_value;
use super::meta::{label_value_errors, qualified_name_errors};

/// A label requirement operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Exists,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and deduplicated, as the server keeps them.
    pub values: Vec<String>,
}

/// A label selector: requirements ANDed. `nothing` is the null `metav1.LabelSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    pub nothing: bool,
}

/// Something labels can be read from.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for serde_json::Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Requirement {
    /// Builds a requirement, validating key and values as `NewRequirement` does.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut values = values;
        values.sort();
        values.dedup();
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_value(&Value::from(key)),
                key_errs.join("; ")
            ));
        }
        errs.extend(operator_errors(operator, &values));
        for (i, v) in values.iter().enumerate() {
            let v_errs = label_value_errors(v);
            if !v_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_value(&Value::from(v.as_str())),
                    v_errs.join("; ")
                ));
            }
        }
        match errs.len() {
            0 => Ok(Self {
                key: key.to_string(),
                operator,
                values,
            }),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// True when the labels satisfy the requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        let contains = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(contains),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(contains),
            Operator::GreaterThan | Operator::LessThan => self.compare(value),
        }
    }

    fn compare(&self, value: Option<&str>) -> bool {
        let (Some(actual), Some(bound)) = (
            value.and_then(|v| v.parse::<i64>().ok()),
            self.values.first().and_then(|v| v.parse::<i64>().ok()),
        ) else {
            return false;
        };
        if self.operator == Operator::GreaterThan {
            actual > bound
        } else {
            actual < bound
        }
    }
}

fn operator_errors(operator: Operator, values: &[String]) -> Vec<String> {
    let shown = || go_value(&Value::from(values.to_vec()));
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => vec![format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            shown()
        )],
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            vec![format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                shown()
            )]
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => vec![format!(
            "values: Invalid value: {}: values set must be empty for exists and does not exist",
            shown()
        )],
        Operator::GreaterThan | Operator::LessThan => {
            let mut errs = Vec::new();
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    shown()
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_value(&Value::from(v.as_str()))
                    ));
                }
            }
            errs
        }
        _ => Vec::new(),
    }
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True when the labels satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches `metadata.labels` of an object (absent labels are an empty set).
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = serde_json::Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }

    /// A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`): null selects nothing,
    /// `{}` everything.
    pub fn from_match_labels_and_expressions(sel: &Value) -> Result<Self, String> {
        let Some(obj) = sel.as_object() else {
            return if sel.is_null() {
                Ok(Self {
                    requirements: Vec::new(),
                    nothing: true,
                })
            } else {
                Err("a label selector must be an object".to_string())
            };
        };
        let mut requirements = Vec::new();
        if let Some(labels) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let value = v.as_str().unwrap_or("").to_string();
                requirements.push(Requirement::new(k, Operator::Equals, vec![value])?);
            }
        }
        if let Some(exprs) = obj.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                requirements.push(expression_requirement(e)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }
}

fn expression_requirement(e: &Value) -> Result<Requirement, String> {
    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
    let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(format!(
                "{} is not a valid label selector operator",
                go_value(&Value::from(other))
            ));
        }
    };
    let values = e
        .get("values")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Requirement::new(key, operator, values)
}

// ---------------------------------------------------------------- label selector lexer

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '(' | ')' | ',' | '=' | '>' | '<')
}

fn special_token(s: &str) -> Option<Tok> {
    Some(match s {
        "!" => Tok::DoesNotExist,
        "!=" => Tok::NotEquals,
        "=" => Tok::Equals,
        "==" => Tok::DoubleEquals,
        ">" => Tok::GreaterThan,
        "<" => Tok::LessThan,
        "(" => Tok::OpenPar,
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        _ => return None,
    })
}

/// Splits a selector into tokens with their literal text; the last one is `End`.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
            i += 1;
        }
        if i >= chars.len() {
            toks.push((Tok::End, String::new()));
            return toks;
        }
        if is_special(chars[i]) {
            // Longest run of special characters that is still an operator.
            let mut best: Option<(Tok, usize)> = None;
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                let candidate: String = chars[i..=j].iter().collect();
                match special_token(&candidate) {
                    Some(t) => best = Some((t, j + 1)),
                    None if best.is_some() => break,
                    None => {}
                }
                j += 1;
            }
            let (tok, end) = best.unwrap_or((Tok::Comma, i + 1));
            toks.push((tok, chars[i..end].iter().collect()));
            i = end;
        } else {
            let start = i;
            while i < chars.len()
                && !is_special(chars[i])
                && !matches!(chars[i], ' ' | '\t' | '\r' | '\n')
            {
                i += 1;
            }
            let lit: String = chars[start..i].iter().collect();
            let tok = match lit.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            toks.push((tok, lit));
        }
    }
}

/// `Values` treats the `in`/`notin` keywords as identifiers (keys and values may be spelled so).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Values,
    KeyAndOperator,
}

struct Parser {
    toks: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => (Tok::Ident, lit),
            t => (t, lit),
        }
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let t = self.lookahead(ctx);
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Ident | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        let mut op = None;
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = qualified_name_errors(&lit);
        if !errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_value(&Value::from(lit.as_str())),
                errs.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Ident | Tok::Comma => {
                let list = self.identifier_list()?;
                let (tok, _) = self.consume(Ctx::Values);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(list)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// `a, b` or `a,,b` (an empty value between commas); stops before `)`.
    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut list: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Ident => {
                    list.push(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(list),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if list.is_empty() {
                        list.push(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        list.push(String::new());
                        return Ok(list);
                    }
                    if t2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        list.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// Parses a `labelSelector` query parameter (`k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
/// `k notin (a,b)`, `k>1`, `k<1`; `,` is AND). The empty selector matches everything.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, String> {
    let mut parser = Parser {
        toks: lex(s),
        pos: 0,
    };
    let mut requirements = parser.parse()?;
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector {
        requirements,
        nothing: false,
    })
}

// ---------------------------------------------------------------- field selectors

/// A field requirement operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One `field op value` term; `value` is unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A field selector: requirements ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The terms, for the caller to check the field names it supports.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `get` returns an object's value of a field (`None` counts as the empty string).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }
}

/// Splits on unescaped commas.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first unescaped operator of a term: `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                ));
            }
            _ => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Parses a `fieldSelector` query parameter (`a.b=v`, `a.b==v`, `a.b!=v`, `,` is AND, `\`
/// escapes `\`, `,` and `=` in values). The empty selector matches everything.
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, String> {
    let mut requirements = Vec::new();
    if s.is_empty() {
        return Ok(FieldSelector { requirements });
    }
    for term in split_terms(s) {
        if term.is_empty() {
            continue;
        }
        let Some((field, operator, rhs)) = split_term(term) else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        requirements.push(FieldRequirement {
            field: field.to_string(),
            operator,
            value: unescape_value(rhs)?,
        });
    }
    requirements.sort_by(|a, b| a.field.cmp(&b.field));
    Ok(FieldSelector { requirements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_matching_table() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5"), ("in", "x")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=web", true),
            ("app=db", false),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db, cache)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("missing in (web)", false),
            ("  app = web ,  tier in ( front ) ", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<5", false),
            ("missing>1", false),
            ("in=x", true),
            ("in in (x)", true),
            ("app=", false),
            ("missing=", false),
            ("example.com/role", false),
            ("app in ()", false),
        ];
        for (sel, want) in cases {
            let parsed = parse_label_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(&l), *want, "{sel}");
        }
        let empty_value = labels(&[("app", "")]);
        assert!(parse_label_selector("app=").unwrap().matches(&empty_value));
        assert!(
            parse_label_selector("app in (a,)")
                .unwrap()
                .matches(&empty_value)
        );
        assert!(
            parse_label_selector("app in ()")
                .unwrap()
                .matches(&empty_value)
        );
    }

    #[test]
    fn label_selector_structure() {
        let s = parse_label_selector("b in (y,x,x), a").unwrap();
        assert_eq!(
            s.requirements,
            vec![
                Requirement {
                    key: "a".into(),
                    operator: Operator::Exists,
                    values: vec![]
                },
                Requirement {
                    key: "b".into(),
                    operator: Operator::In,
                    values: vec!["x".into(), "y".into()]
                },
            ]
        );
        assert!(parse_label_selector("").unwrap().is_everything());
        assert!(parse_label_selector("   ").unwrap().is_everything());
    }

    #[test]
    fn label_selector_errors() {
        let cases: &[(&str, &str)] = &[
            ("a,", "found '', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a x",
                "unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a =(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "a!b",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(parse_label_selector(sel), Err(want.to_string()), "{sel}");
        }
        let e = parse_label_selector("bad key!=x").unwrap_err();
        assert_eq!(
            e,
            "unable to parse requirement: found 'key', expected: in, notin, =, ==, !=, gt, lt"
        );
        let e = parse_label_selector("Bad_/k=x").unwrap_err();
        assert!(
            e.starts_with(
                "unable to parse requirement: <nil>: Invalid value: \"Bad_/k\": prefix part"
            ),
            "{e}"
        );
        let e = parse_label_selector("k=bad!").unwrap_err();
        assert!(e.starts_with("found '!'"), "{e}");
        let e = parse_label_selector("k=-bad").unwrap_err();
        assert!(
            e.starts_with("unable to parse requirement: values[0][k]: Invalid value: \"-bad\": a valid label must be"),
            "{e}"
        );
    }

    #[test]
    fn match_labels_and_expressions() {
        let s = LabelSelector::from_match_labels_and_expressions(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web", "tier": "edge"}}})));
        assert!(!s.matches_object(
            &json!({"metadata": {"labels": {"app": "web", "tier": "edge", "canary": ""}}})
        ));
        assert!(!s.matches_object(&json!({"metadata": {}})));
        let all = LabelSelector::from_match_labels_and_expressions(&json!({})).unwrap();
        assert!(all.matches_object(&json!({})));
        let none = LabelSelector::from_match_labels_and_expressions(&Value::Null).unwrap();
        assert!(!none.matches_object(&json!({})));
        assert_eq!(
            LabelSelector::from_match_labels_and_expressions(
                &json!({"matchExpressions": [{"key": "a", "operator": "Is"}]})
            ),
            Err("\"Is\" is not a valid label selector operator".into())
        );
        assert_eq!(
            LabelSelector::from_match_labels_and_expressions(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
            ),
            Err(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                    .into()
            )
        );
        assert!(
            LabelSelector::from_match_labels_and_expressions(
                &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
            )
            .is_err()
        );
    }

    #[test]
    fn field_selector_table() {
        let get = |f: &str| match f {
            "metadata.name" => Some("demo".to_string()),
            "metadata.namespace" => Some("default".to_string()),
            "spec.odd" => Some("a,b=c\\".to_string()),
            _ => None,
        };
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=demo", true),
            ("metadata.name==demo", true),
            ("metadata.name!=demo", false),
            ("metadata.name=demo,metadata.namespace=default", true),
            ("metadata.name=demo,metadata.namespace!=default", false),
            ("metadata.name=other", false),
            ("spec.odd=a\\,b\\=c\\\\", true),
            ("status.phase=", true),
            ("metadata.name=demo,", true),
        ];
        for (sel, want) in cases {
            let parsed = parse_field_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(get), *want, "{sel}");
        }
        let s = parse_field_selector("involvedObject.uid=u,involvedObject.kind=Pool").unwrap();
        let fields: Vec<&str> = s.requirements().iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, vec!["involvedObject.kind", "involvedObject.uid"]);
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            parse_field_selector("metadata.name"),
            Err("invalid selector: 'metadata.name'; can't understand 'metadata.name'".into())
        );
        assert_eq!(
            parse_field_selector("a=b=c"),
            Err("invalid field selector: unescaped character in value: 61".into())
        );
        assert_eq!(
            parse_field_selector("a=b\\x"),
            Err("invalid field selector: invalid escape sequence: \\x".into())
        );
        assert_eq!(
            parse_field_selector("a=b\\"),
            Err("invalid field selector: invalid escape sequence: \\".into())
        );
    }

    fn render(key: &str, op: usize, values: &[String]) -> String {
        match op {
            0 => key.to_string(),
            1 => format!("!{key}"),
            2 => format!("{key} = {}", values[0]),
            3 => format!("{key}=={}", values[0]),
            4 => format!("{key} != {}", values[0]),
            5 => format!("{key} in ({})", values.join(", ")),
            _ => format!("{key} notin ({})", values.join(",")),
        }
    }

    fn reference(
        labels: &BTreeMap<String, String>,
        key: &str,
        op: usize,
        values: &[String],
    ) -> bool {
        let v = labels.get(key);
        let within = v.is_some_and(|v| values.contains(v));
        match op {
            0 => v.is_some(),
            1 => v.is_none(),
            2 | 3 => v == Some(&values[0]),
            4 => v != Some(&values[0]),
            5 => within,
            _ => !within,
        }
    }

    proptest::proptest! {
        #[test]
        fn rendered_selectors_parse_and_match_like_the_reference(
            reqs in proptest::collection::vec(
                (proptest::sample::select(vec!["a", "b", "x.io/c"]), 0usize..7,
                 proptest::collection::vec("[a-c]{1,2}", 1..3)),
                1..4),
            labels in proptest::collection::btree_map(
                proptest::sample::select(vec!["a".to_string(), "b".to_string(), "x.io/c".to_string()]),
                "[a-c]{1,2}", 0..3),
        ) {
            let text: Vec<String> = reqs.iter().map(|(k, op, vs)| render(k, *op, vs)).collect();
            let parsed = parse_label_selector(&text.join(" , "));
            proptest::prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
            let parsed = parsed.unwrap_or_default();
            proptest::prop_assert_eq!(parsed.requirements.len(), reqs.len());
            let want = reqs.iter().all(|(k, op, vs)| reference(&labels, k, *op, vs));
            proptest::prop_assert_eq!(parsed.matches(&labels), want);
        }
    }
}
