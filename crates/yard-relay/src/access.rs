//! Who may use the relay: the token in the three forms it is accepted in,
//! taking it off requests before they go upstream, and the rule that an
//! open relay listens on loopback only.
//!
//! Tokens are compared through their SHA-256 digests, in constant time, so
//! neither the token's length nor its first wrong byte shows in how long a
//! refusal takes. The cookie carries the digest, not the token: a browser
//! never stores the token itself.

use std::fmt;
use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use sha2::{Digest, Sha256};

use crate::RelayError;
use crate::forward::percent_decode;

/// The cookie the relay sets after a request authenticated with `?token=`;
/// its value is the hex SHA-256 of the token.
pub const COOKIE_NAME: &str = "yard_relay";

/// The query parameter that carries the token.
const QUERY_NAME: &str = "token";

/// Who may use a relay.
#[derive(Clone)]
pub enum Access {
    /// Whoever presents this token.
    Token(String),
    /// Everyone who can reach the listener; allowed on loopback only (see
    /// [`check_open_access`]).
    Open,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Open => f.write_str("Open"),
        }
    }
}

/// Refuses [`Access::Open`] unless `listen` is a loopback address: an open
/// relay on a public address hands the browser to anyone who finds it.
pub fn check_open_access(listen: SocketAddr, access: &Access) -> Result<(), RelayError> {
    match access {
        Access::Open if !listen.ip().to_canonical().is_loopback() => {
            Err(RelayError::OpenNotOnLoopback { listen })
        }
        Access::Token(token) if token.is_empty() => Err(RelayError::EmptyToken),
        _ => Ok(()),
    }
}

/// How a request got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The relay is open.
    Open,
    /// With the token in a header or our cookie.
    Token,
    /// With `?token=`: the answer sets the cookie.
    Query,
    /// No token was presented.
    Missing,
    /// A token was presented and it is not the one.
    Wrong,
}

/// The access check, ready to answer requests.
pub(crate) struct Gate {
    secret: Option<Secret>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("token", &self.secret.is_some())
            .finish()
    }
}

/// The token and what is derived from it once.
struct Secret {
    token: String,
    digest: [u8; 32],
    set_cookie: HeaderValue,
}

impl Gate {
    pub(crate) fn new(access: &Access) -> Result<Self, RelayError> {
        let secret = match access {
            Access::Open => None,
            Access::Token(token) if token.is_empty() => return Err(RelayError::EmptyToken),
            Access::Token(token) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                let cookie = format!(
                    "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/",
                    hex::encode(digest)
                );
                // Hex and ASCII attributes: always a valid header value.
                let set_cookie =
                    HeaderValue::from_str(&cookie).map_err(|_| RelayError::EmptyToken)?;
                Some(Secret {
                    token: token.clone(),
                    digest,
                    set_cookie,
                })
            }
        };
        Ok(Self { secret })
    }

    /// The token, when access needs one (for the URLs the relay hands out).
    pub(crate) fn token(&self) -> Option<&str> {
        self.secret.as_ref().map(|s| s.token.as_str())
    }

    /// The `Set-Cookie` value that lets a browser in without the token.
    pub(crate) fn set_cookie(&self) -> Option<&HeaderValue> {
        self.secret.as_ref().map(|s| &s.set_cookie)
    }

    /// Whether `parts` may pass, and how it proved it.
    pub(crate) fn admit(&self, parts: &Parts) -> Admission {
        let Some(secret) = &self.secret else {
            return Admission::Open;
        };
        let mut presented = false;
        for candidate in bearer_tokens(&parts.headers) {
            presented = true;
            if secret.matches(candidate.as_bytes()) {
                return Admission::Token;
            }
        }
        for cookie in our_cookies(&parts.headers) {
            presented = true;
            let mut digest = [0u8; 32];
            if hex::decode_to_slice(cookie, &mut digest).is_ok()
                && constant_time_eq(&digest, &secret.digest)
            {
                return Admission::Token;
            }
        }
        for candidate in query_tokens(&parts.uri) {
            presented = true;
            if secret.matches(percent_decode(candidate).as_bytes()) {
                return Admission::Query;
            }
        }
        if presented {
            Admission::Wrong
        } else {
            Admission::Missing
        }
    }

    /// Takes every form of the token off a request bound upstream: the
    /// bearer header carrying it, the `token` query parameter and our
    /// cookie. Other credentials are left alone.
    pub(crate) fn strip(&self, parts: &mut Parts) {
        let Some(secret) = &self.secret else {
            return;
        };
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let kept: Vec<HeaderValue> = parts
                .headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .filter(|value| {
                    bearer_credential(value).is_none_or(|token| !secret.matches(token.as_bytes()))
                })
                .cloned()
                .collect();
            parts.headers.remove(header::AUTHORIZATION);
            for value in kept {
                parts.headers.append(header::AUTHORIZATION, value);
            }
        }
        if our_cookies(&parts.headers).next().is_some() {
            let kept: Vec<&str> = cookie_pairs(&parts.headers)
                .filter(|pair| cookie_name(pair) != COOKIE_NAME)
                .collect();
            let kept = kept.join("; ");
            parts.headers.remove(header::COOKIE);
            if !kept.is_empty()
                && let Ok(value) = HeaderValue::from_str(&kept)
            {
                parts.headers.insert(header::COOKIE, value);
            }
        }
        if query_tokens(&parts.uri).next().is_some() {
            parts.uri = without_query_token(&parts.uri);
        }
    }
}

impl Secret {
    fn matches(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        constant_time_eq(&digest, &self.digest)
    }
}

/// Equality that looks at every byte whatever the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The credential of a `Bearer` authorization, in any case and spacing.
fn bearer_credential(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?.trim();
    let (scheme, credential) = text.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

fn bearer_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(bearer_credential)
}

/// Every `name=value` pair of every `Cookie` header.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
}

fn cookie_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name).trim()
}

/// The values of our cookie (a browser may send it more than once).
fn our_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    cookie_pairs(headers).filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name.trim() == COOKIE_NAME).then(|| value.trim().trim_matches('"'))
    })
}

/// The raw (still percent-encoded) values of the `token` query parameter.
fn query_tokens(uri: &Uri) -> impl Iterator<Item = &str> {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == QUERY_NAME).then_some(value)
        })
}

/// `uri` without its `token` query parameters; the other pairs are kept
/// byte for byte and in order (`/json/new?<url>` carries a whole URL).
fn without_query_token(uri: &Uri) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name) != QUERY_NAME)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn gate() -> Gate {
        Gate::new(&Access::Token("s3cret".to_owned())).unwrap()
    }

    fn cookie() -> String {
        format!("{COOKIE_NAME}={}", hex::encode(Sha256::digest(b"s3cret")))
    }

    #[test]
    fn open_access_is_allowed_on_loopback_only() {
        for listen in ["127.0.0.1:9223", "[::1]:9223", "[::ffff:127.0.0.1]:9223"] {
            check_open_access(listen.parse().unwrap(), &Access::Open).unwrap();
        }
        for listen in ["0.0.0.0:9223", "[::]:9223", "192.168.1.4:9223"] {
            let refused = check_open_access(listen.parse().unwrap(), &Access::Open).unwrap_err();
            assert!(matches!(refused, RelayError::OpenNotOnLoopback { .. }));
            assert!(refused.to_string().contains("token"), "{refused}");
        }
        check_open_access(
            "0.0.0.0:9223".parse().unwrap(),
            &Access::Token("t".to_owned()),
        )
        .unwrap();
    }

    #[test]
    fn an_empty_token_is_refused() {
        let listen = "0.0.0.0:9223".parse().unwrap();
        let refused = check_open_access(listen, &Access::Token(String::new())).unwrap_err();
        assert!(matches!(refused, RelayError::EmptyToken));
        assert!(Gate::new(&Access::Token(String::new())).is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let access = Access::Token("s3cret".to_owned());
        assert!(!format!("{access:?}").contains("s3cret"));
    }

    #[test]
    fn the_token_is_accepted_in_each_of_its_forms() {
        let gate = gate();
        let cases = [
            request("/", &[("authorization", "Bearer s3cret")]),
            request("/", &[("authorization", "bearer   s3cret ")]),
            request("/", &[("cookie", &format!("a=b; {}", cookie()))]),
        ];
        for parts in &cases {
            assert_eq!(gate.admit(parts), Admission::Token, "{:?}", parts.headers);
        }
        let query = request("/vnc.html?autoconnect=1&token=s3cret", &[]);
        assert_eq!(gate.admit(&query), Admission::Query);
        let encoded = request("/?token=s3c%72et", &[]);
        assert_eq!(gate.admit(&encoded), Admission::Query);
    }

    #[test]
    fn a_missing_or_wrong_token_is_refused() {
        let gate = gate();
        assert_eq!(gate.admit(&request("/", &[])), Admission::Missing);
        let wrong = [
            request("/", &[("authorization", "Bearer nope")]),
            request("/", &[("authorization", "Basic czNjcmV0")]),
            request("/?token=s3cre", &[]),
            request("/?token=", &[]),
            request("/", &[("cookie", &format!("{COOKIE_NAME}=s3cret"))]),
            request(
                "/",
                &[("cookie", &format!("{COOKIE_NAME}={}", "00".repeat(32)))],
            ),
        ];
        for parts in &wrong {
            let admission = gate.admit(parts);
            assert!(
                matches!(admission, Admission::Wrong | Admission::Missing),
                "{parts:?} got {admission:?}"
            );
        }
        let open = Gate::new(&Access::Open).unwrap();
        assert_eq!(open.admit(&request("/", &[])), Admission::Open);
    }

    #[test]
    fn stripping_takes_off_the_token_and_keeps_everything_else() {
        let gate = gate();
        let mut parts = request(
            "/json/new?http://example.test/?a=1&token=s3cret&b=2",
            &[
                ("authorization", "Bearer s3cret"),
                ("cookie", &format!("theme=dark; {}; lang=en", cookie())),
            ],
        );
        gate.strip(&mut parts);
        assert_eq!(
            parts.uri.to_string(),
            "/json/new?http://example.test/?a=1&b=2"
        );
        assert!(parts.headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(parts.headers[header::COOKIE], "theme=dark; lang=en");

        let mut only = request(
            "/vnc.html?token=s3cret",
            &[("cookie", &cookie()), ("authorization", "Basic abc")],
        );
        gate.strip(&mut only);
        assert_eq!(only.uri.to_string(), "/vnc.html");
        assert!(only.headers.get(header::COOKIE).is_none());
        assert_eq!(only.headers[header::AUTHORIZATION], "Basic abc");
    }

    #[test]
    fn the_cookie_carries_the_digest_and_its_attributes() {
        let gate = gate();
        let set = gate.set_cookie().unwrap().to_str().unwrap();
        assert!(set.starts_with(&cookie()), "{set}");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/")
        );
        assert!(!set.contains("s3cret"));
    }
}
