//! Query-string helpers (repeated keys, optional values).

pub fn all(query: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub fn one(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated() {
        assert_eq!(super::all("path=%2Fa&x=1&path=b", "path"), vec!["/a", "b"]);
        assert_eq!(super::one("x=1", "path"), None);
    }
}
