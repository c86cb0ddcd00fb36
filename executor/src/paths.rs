//! Path expansion and normalisation shared by the filesystem routes and `cwd` fields.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is empty")]
    Empty,
    #[error("undefined variable ${0}")]
    Undefined(String),
}

/// Expands `$NAME` and `${NAME}`; an undefined variable is an error.
pub fn expand_vars(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PathError> {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &input[i + 1..];
        if let Some(inner) = rest.strip_prefix('{') {
            if let Some(end) = inner.find('}') {
                let name = &inner[..end];
                out.push_str(&lookup(name).ok_or_else(|| PathError::Undefined(name.to_string()))?);
                for _ in 0..end + 2 {
                    chars.next();
                }
                continue;
            }
            out.push(c);
            continue;
        }
        let len = rest
            .chars()
            .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
            .count();
        if len == 0 {
            out.push(c);
            continue;
        }
        let name = &rest[..len];
        out.push_str(&lookup(name).ok_or_else(|| PathError::Undefined(name.to_string()))?);
        for _ in 0..len {
            chars.next();
        }
    }
    Ok(out)
}

/// Lexically cleans an absolute path (`.`, `..` and duplicate separators removed).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Context for turning a caller's path into an absolute one.
pub struct Resolver<'a> {
    pub home: &'a Path,
    pub cwd: &'a Path,
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    /// NUL check, `$VAR` expansion, `~` expansion, made absolute against the cwd, cleaned.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, PathError> {
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        let expanded = expand_vars(raw, self.lookup)?;
        let with_home = if expanded == "~" {
            self.home.to_path_buf()
        } else if let Some(rest) = expanded
            .strip_prefix("~/")
            .or_else(|| expanded.strip_prefix("~\\"))
        {
            self.home.join(rest)
        } else {
            PathBuf::from(expanded)
        };
        let abs = if with_home.is_absolute() {
            with_home
        } else {
            self.cwd.join(with_home)
        };
        Ok(clean(&abs))
    }
}

/// Process environment lookup.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "X" => Some("x1".into()),
            _ => None,
        }
    }

    fn resolver_test(raw: &str) -> Result<PathBuf, PathError> {
        Resolver {
            home: Path::new("/home/u"),
            cwd: Path::new("/work"),
            lookup: &lookup,
        }
        .resolve(raw)
    }

    #[test]
    fn expands_variables() {
        assert_eq!(expand_vars("$X/${X}/a$", &lookup).unwrap(), "x1/x1/a$");
        assert_eq!(expand_vars("/p/$X.txt", &lookup).unwrap(), "/p/x1.txt");
        assert_eq!(
            expand_vars("$NOPE", &lookup),
            Err(PathError::Undefined("NOPE".into()))
        );
        assert_eq!(
            expand_vars("${NOPE}/a", &lookup),
            Err(PathError::Undefined("NOPE".into()))
        );
    }

    #[test]
    fn resolves_home_relative_and_dotdot() {
        assert_eq!(resolver_test("~").unwrap(), PathBuf::from("/home/u"));
        assert_eq!(resolver_test("~/a").unwrap(), PathBuf::from("/home/u/a"));
        assert_eq!(
            resolver_test("rel/x").unwrap(),
            PathBuf::from("/work/rel/x")
        );
        assert_eq!(
            resolver_test("/a/b/../c/./d").unwrap(),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(resolver_test("/../../etc").unwrap(), PathBuf::from("/etc"));
        assert_eq!(resolver_test("../up").unwrap(), PathBuf::from("/up"));
    }

    #[test]
    fn rejects_nul_and_empty() {
        assert_eq!(resolver_test("/a\0b"), Err(PathError::Nul));
        assert_eq!(resolver_test(""), Err(PathError::Empty));
    }
}
