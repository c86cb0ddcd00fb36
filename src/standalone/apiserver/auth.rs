//! Token authentication of the HTTP endpoint: in standalone mode anything on the machine
//! (sandbox processes included) can reach the port, so only holders of the kubeconfig's
//! token get in. kubectl and helm do not send bearer tokens over plain HTTP, so the token is
//! also accepted as a secret path prefix (`/t/<token>`, in the kubeconfig's server URL),
//! which every client keeps. In-process clients never pass through here.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::status::ApiError;

/// The token every HTTP request must present as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// A fresh random token (244 random bits from the OS generator).
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the request carries this token (compared in constant time).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| strip_bearer(v))
        else {
            return false;
        };
        bool::from(presented.ct_eq(self.0.as_bytes()))
    }
}

impl BearerToken {
    /// The path prefix clients may present the token as.
    pub fn path_prefix(&self) -> String {
        format!("{PATH_PREFIX}{}", self.0)
    }

    /// `path` without a matching `/t/<token>` prefix (compared in constant time), if it has
    /// one.
    pub fn strip_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(PATH_PREFIX)?;
        let end = rest.find('/').unwrap_or(rest.len());
        let (presented, tail) = rest.split_at(end);
        bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())).then_some(tail)
    }
}

/// Where the token sits in a path-authenticated URL.
pub const PATH_PREFIX: &str = "/t/";

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// The Status a real API server answers anonymous or wrongly-authenticated requests with.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn admits_only_the_right_bearer_token() {
        let t = BearerToken::new("s3cret");
        assert!(t.admits(&headers(Some("Bearer s3cret"))));
        assert!(t.admits(&headers(Some("bearer  s3cret "))));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("Bearer s3crett"),
            Some("Basic s3cret"),
            Some("s3cret"),
        ] {
            assert!(!t.admits(&headers(bad)), "{bad:?}");
        }
    }

    #[test]
    fn the_path_prefix_carries_the_token_too() {
        let t = BearerToken::new("s3cret");
        assert_eq!(t.path_prefix(), "/t/s3cret");
        assert_eq!(t.strip_path("/t/s3cret/api/v1/pods"), Some("/api/v1/pods"));
        assert_eq!(t.strip_path("/t/s3cret"), Some(""));
        for bad in [
            "/api/v1/pods",
            "/t/s3cre/api",
            "/t/s3crett/api",
            "/t//api",
            "/s3cret/api",
        ] {
            assert_eq!(t.strip_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_tokens_differ_and_are_long() {
        let (a, b) = (BearerToken::generate(), BearerToken::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 64);
    }

    #[test]
    fn unauthorized_is_a_kubernetes_status() {
        let s = unauthorized().to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 401);
        assert_eq!(s["reason"], "Unauthorized");
    }
}
