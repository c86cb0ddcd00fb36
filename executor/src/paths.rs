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
    #[error("{0} is outside the sandbox's filesystem")]
    Outside(String),
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

/// The directories the files API may touch (standalone sandboxes share the host's
/// filesystem); no roots means no confinement. Symlinks are followed before the check, so
/// a link inside a root pointing outside it is refused too.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    roots: Vec<PathBuf>,
}

impl Confinement {
    /// Roots are canonicalised now (a missing root is kept as given, cleaned).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Self {
        let roots = roots
            .into_iter()
            .filter(|r| r.is_absolute())
            .map(|r| std::fs::canonicalize(&r).unwrap_or_else(|_| clean(&r)))
            .collect();
        Self { roots }
    }

    /// Parses a `:`-separated list (`EXECD_FS_ROOTS`).
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from))
    }

    pub fn is_confined(&self) -> bool {
        !self.roots.is_empty()
    }

    /// `Ok` when the cleaned absolute `path`, with symlinks of its existing part resolved,
    /// lies in a root.
    pub fn check(&self, path: &Path) -> Result<(), PathError> {
        if self.roots.is_empty() {
            return Ok(());
        }
        let real = real_path(path);
        if self.roots.iter().any(|r| real.starts_with(r)) {
            Ok(())
        } else {
            Err(PathError::Outside(path.display().to_string()))
        }
    }
}

/// `path` with its longest existing prefix canonicalised (the rest cannot hold symlinks).
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            out.extend(rest.iter().rev());
            return clean(&out);
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return clean(path),
        }
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
    fn confinement_refuses_escapes_and_symlinks_out() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path().canonicalize().unwrap();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("out")).unwrap();
        std::os::unix::fs::symlink(r.join("sub"), r.join("in")).unwrap();
        let c = Confinement::new([root.path().to_path_buf()]);
        assert!(c.is_confined());
        for ok in ["", "sub", "sub/new-file", "new/deeper/file", "in/x"] {
            assert!(c.check(&clean(&r.join(ok))).is_ok(), "{ok}");
        }
        for bad in ["out", "out/x", "out/new/x"] {
            assert!(
                matches!(c.check(&r.join(bad)), Err(PathError::Outside(_))),
                "{bad}"
            );
        }
        for bad in ["/etc/passwd", "/", "/nonexistent/x"] {
            assert!(c.check(Path::new(bad)).is_err(), "{bad}");
        }
        // A sibling whose name starts with the root's name is not inside it.
        let sibling = PathBuf::from(format!("{}-other/x", r.display()));
        assert!(c.check(&sibling).is_err());
        assert!(Confinement::default().check(Path::new("/etc")).is_ok());
        assert!(!Confinement::from_list("").is_confined());
        assert!(Confinement::from_list(&format!("{}:/tmp", r.display())).is_confined());
    }

    #[test]
    fn rejects_nul_and_empty() {
        assert_eq!(resolver_test("/a\0b"), Err(PathError::Nul));
        assert_eq!(resolver_test(""), Err(PathError::Empty));
    }
}
