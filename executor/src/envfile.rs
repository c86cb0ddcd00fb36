//! The `EXECD_ENVS` file: `KEY=VALUE` lines, with the quoting the 1.1.1 SDK's `set_env` writes.

use crate::paths::expand_vars;

/// Parses the file text into ordered pairs; a later duplicate key replaces an earlier one.
/// `lookup` resolves `$VAR` for unquoted and double-quoted values (undefined ⇒ empty).
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let earlier = |name: &str| {
            out.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(name))
                .or_else(|| Some(String::new()))
        };
        let value = value.trim();
        let parsed = if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
            value[1..value.len() - 1].to_string()
        } else if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            let unescaped = unescape(&value[1..value.len() - 1]);
            expand_vars(&unescaped, &earlier).unwrap_or(unescaped)
        } else {
            expand_vars(value, &earlier).unwrap_or_else(|_| value.to_string())
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), parsed));
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Reads and parses the file; a missing or unreadable file yields no entries.
pub fn load(path: &std::path::Path) -> Vec<(String, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &|n| std::env::var(n).ok()),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/root".to_string())
    }

    #[test]
    fn forms() {
        let text =
            "# c\n\nA=1\nB='lit $HOME'\nC=\"q\\\"x\\n$HOME\"\nD=$HOME/bin\nnoeq\nA=2\nE=$A-x\n";
        let got = parse(text, &lookup);
        let want: Vec<(String, String)> = [
            ("B", "lit $HOME"),
            ("C", "q\"x\n/root"),
            ("D", "/root/bin"),
            ("A", "2"),
            ("E", "2-x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn undefined_variables_expand_to_empty() {
        assert_eq!(
            parse("X=a${NOPE}b", &lookup),
            vec![("X".into(), "ab".into())]
        );
    }
}
