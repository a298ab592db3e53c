//! The few calls of Gitea's REST API the set-up makes, as plain requests:
//! a path of segments (each percent-encoded, so a user or organisation
//! name can never change the path), credentials in the `Authorization`
//! header only (never in a URL, which ends up in logs and errors), a JSON
//! body, and the status with the JSON answer back.
//!
//! What a status means is the steps' business (`setup.rs`); this layer
//! only tells a failure to reach the forge (worth another try) from an
//! answer.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::error::SetupError;
use crate::secret::Secret;

/// Who a request is sent as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    Anonymous,
    /// HTTP Basic with a user's password: the only way Gitea lets a token
    /// be made.
    Basic {
        user: &'a str,
        password: &'a Secret,
    },
    /// `Authorization: token <sha1>`.
    Token(&'a Secret),
}

/// The forge's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// What Gitea said, from its `{message}` error shape or the raw text,
    /// cut short.
    pub(crate) fn message(&self) -> String {
        let text = match &self.body {
            Value::Object(fields) => match fields.get("message") {
                Some(Value::String(message)) => message.clone(),
                _ => self.body.to_string(),
            },
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let text = text.trim();
        let text = if text.is_empty() {
            self.status
                .canonical_reason()
                .unwrap_or("no message")
                .to_owned()
        } else {
            text.to_owned()
        };
        shorten(&text, 300)
    }

    /// A string field of the answer.
    pub(crate) fn text(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

/// `text` cut at `max` characters.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Gitea's API at one address.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    /// The forge's root, ending in `/`: `http://host:3000/`.
    root: Url,
}

impl Api {
    /// The API of the forge at `forge_url`: its root (`http://host:3000`)
    /// or its API (`…/api/v1`), either works.
    pub(crate) fn new(forge_url: &str, request_timeout: Duration) -> Result<Self, SetupError> {
        let bad = |why: &str| SetupError::Address(why.to_owned());
        let mut root = Url::parse(forge_url.trim())
            .map_err(|_| bad("give an absolute http:// or https:// address"))?;
        if !matches!(root.scheme(), "http" | "https") || root.cannot_be_a_base() {
            return Err(bad("give an http:// or https:// address"));
        }
        if !root.username().is_empty() || root.password().is_some() {
            return Err(bad(
                "leave credentials out of the address; pass the admin credential on its own",
            ));
        }
        if root.query().is_some() || root.fragment().is_some() {
            return Err(bad("leave out any ?query or #fragment"));
        }
        let path = root.path().trim_end_matches('/');
        let path = path.strip_suffix("/api/v1").unwrap_or(path);
        let path = format!("{path}/");
        root.set_path(&path);

        // reqwest is built without a default TLS provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(request_timeout.min(Duration::from_secs(10)))
            .timeout(request_timeout)
            // A redirect would turn a POST into a GET and could carry the
            // credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        let loopback = match root.host_str() {
            Some(host) => {
                host == "localhost"
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => false,
        };
        if loopback {
            // The forge in the same container is never behind a proxy.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Self { http, root })
    }

    /// The forge's root address, without the trailing `/`.
    pub(crate) fn root(&self) -> String {
        self.root.as_str().trim_end_matches('/').to_owned()
    }

    /// `…/api/v1/<segments>?<query>`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// One request. `Err` is a failure to reach the forge or read its
    /// answer, described without the address's credentials (it has none)
    /// and without the request's.
    pub(crate) async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .request(method, self.url(segments, query))
            .header(reqwest::header::ACCEPT, "application/json");
        request = match auth {
            Auth::Anonymous => request,
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
            Auth::Token(token) => {
                let mut value = HeaderValue::from_str(&format!("token {}", token.expose()))
                    .map_err(|_| {
                        "the token holds characters no HTTP header can carry".to_owned()
                    })?;
                value.set_sensitive(true);
                request.header(AUTHORIZATION, value)
            }
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(describe)?;
        let status = response.status();
        let text = response.text().await.map_err(describe)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(shorten(&text, 300)))
        };
        Ok(Answer { status, body })
    }
}

/// A transport error in words, with its causes.
fn describe(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect to the forge".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_root_or_the_api_address_both_work() {
        for given in [
            "http://forge:3000",
            "http://forge:3000/",
            "http://forge:3000/api/v1",
            "http://forge:3000/api/v1/",
        ] {
            let api = Api::new(given, Duration::from_secs(1)).unwrap();
            assert_eq!(api.root(), "http://forge:3000", "{given}");
        }
        let api = Api::new("https://example.com/git/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.url(&["users", "a/b", "tokens"], &[]).as_str(),
            "https://example.com/git/api/v1/users/a%2Fb/tokens"
        );
    }

    #[test]
    fn addresses_with_credentials_are_refused_without_repeating_them() {
        let error = Api::new("http://root:hunter2@forge/", Duration::from_secs(1)).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(Api::new("forge:3000", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn messages_come_from_giteas_error_shape() {
        let answer = Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: serde_json::json!({ "message": "user already exists [name: bot]", "url": "x" }),
        };
        assert_eq!(answer.message(), "user already exists [name: bot]");
        let empty = Answer {
            status: StatusCode::BAD_GATEWAY,
            body: Value::Null,
        };
        assert_eq!(empty.message(), "Bad Gateway");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
