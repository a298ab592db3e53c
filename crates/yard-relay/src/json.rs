//! Rewriting the browser's `/json` answers so that the URLs in them lead
//! back through the relay.
//!
//! Chromium names its own address in `/json/version`, `/json/list` and
//! `/json/new`: `webSocketDebuggerUrl` is `ws://127.0.0.1:9222/devtools/…`
//! and the `devtoolsFrontendUrl`s carry `ws=127.0.0.1:9222/devtools/…`. A
//! client of the relay cannot reach that address, so each is rewritten to
//! the address the client used (its `Host`), with the token in the
//! WebSocket URL's query when access needs one: a CDP client that reads
//! `/json/version` and opens `webSocketDebuggerUrl` then just works.

use serde_json::Value;

use crate::forward::{percent_decode, percent_encode};

/// Whether `path` is one of the browser's JSON endpoints, whose answers
/// are rewritten.
pub(crate) fn is_json_path(path: &str) -> bool {
    let rest = if path == "/json" {
        ""
    } else if let Some(rest) = path.strip_prefix("/json/") {
        rest
    } else {
        return false;
    };
    // `/json/activate/ID` and `/json/close/ID` answer plain text.
    !(rest.starts_with("activate/") || rest.starts_with("close/"))
}

/// The answer was not JSON.
#[derive(Debug)]
pub(crate) struct NotJson(pub(crate) serde_json::Error);

/// Rewrites every WebSocket URL in a `/json` answer to lead to `public`
/// (the `host[:port]` the client used), adding `token` to their query.
pub(crate) fn rewrite(body: &[u8], public: &str, token: Option<&str>) -> Result<Vec<u8>, NotJson> {
    let mut value: Value = serde_json::from_slice(body).map_err(NotJson)?;
    rewrite_value(&mut value, public, token);
    serde_json::to_vec_pretty(&value).map_err(NotJson)
}

fn rewrite_value(value: &mut Value, public: &str, token: Option<&str>) {
    match value {
        Value::Array(items) => {
            for item in items {
                rewrite_value(item, public, token);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    Value::String(url) if key == "webSocketDebuggerUrl" => {
                        if let Some(new) = websocket_url(url, public, token) {
                            *url = new;
                        }
                    }
                    // `devtoolsFrontendUrl` and `devtoolsFrontendUrlCompat`.
                    Value::String(url) if key.starts_with("devtoolsFrontendUrl") => {
                        if let Some(new) = frontend_url(url, public, token) {
                            *url = new;
                        }
                    }
                    other => rewrite_value(other, public, token),
                }
            }
        }
        _ => {}
    }
}

/// The token as a query pair, encoded.
fn token_pair(token: &str) -> String {
    format!("token={}", percent_encode(token, b""))
}

/// Appends `pair` to the query of `url` (before any fragment).
fn with_query_pair(url: &str, pair: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = match base.find('?') {
        Some(at) if at + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
        None => "?",
    };
    let mut out = format!("{base}{separator}{pair}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The path and query of an address without its scheme
/// (`127.0.0.1:9222/devtools/page/ID` → `/devtools/page/ID`).
fn after_authority(rest: &str) -> &str {
    rest.find(['/', '?', '#']).map_or("", |at| &rest[at..])
}

/// `ws://127.0.0.1:9222/devtools/page/ID` →
/// `ws://<public>/devtools/page/ID?token=<token>`.
pub(crate) fn websocket_url(url: &str, public: &str, token: Option<&str>) -> Option<String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    let tail = match after_authority(rest) {
        "" => "/",
        tail => tail,
    };
    let url = format!("ws://{public}{tail}");
    Some(match token {
        Some(token) => with_query_pair(&url, &token_pair(token)),
        None => url,
    })
}

/// Rewrites the `ws=` parameter of a DevTools frontend URL
/// (`/devtools/inspector.html?ws=127.0.0.1:9222/devtools/page/ID`, or the
/// same on `chrome-devtools-frontend.appspot.com`) to lead to `public`,
/// with the token in the WebSocket URL's own query, encoded inside `ws=`.
/// A relative URL is served through the relay, so it gets the token too:
/// opening it in a browser sets the relay's cookie for the page's assets.
/// An absolute one names another site (Chromium's frontend on appspot.com):
/// the token is left out of it, since opening it would hand the token to
/// that site; such a frontend then needs the token given by hand.
pub(crate) fn frontend_url(url: &str, public: &str, token: Option<&str>) -> Option<String> {
    let (base, query) = url.split_once('?')?;
    let relative = base.starts_with('/') && !base.starts_with("//");
    let token = token.filter(|_| relative);
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let mut found = false;
    let mut pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("ws", value)) => {
                found = true;
                let target = percent_decode(value);
                let mut target = format!("{public}{}", after_authority(&target));
                if let Some(token) = token {
                    target = with_query_pair(&target, &token_pair(token));
                }
                format!("ws={}", percent_encode(&target, b"/:"))
            }
            _ => pair.to_owned(),
        })
        .collect();
    if !found {
        return None;
    }
    if let Some(token) = token {
        pairs.push(token_pair(token));
    }
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_are_the_browsers_json_endpoints() {
        for path in [
            "/json",
            "/json/",
            "/json/version",
            "/json/list",
            "/json/new",
            "/json/protocol",
        ] {
            assert!(is_json_path(path), "{path}");
        }
        for path in [
            "/",
            "/jsonx",
            "/devtools/page/1",
            "/json/activate/ID",
            "/json/close/ID",
            "/vnc.html",
        ] {
            assert!(!is_json_path(path), "{path}");
        }
    }

    #[test]
    fn a_websocket_url_leads_back_through_the_relay_with_the_token() {
        let url = "ws://127.0.0.1:9222/devtools/page/ABC";
        assert_eq!(
            websocket_url(url, "relay.example:9223", Some("t0k")).unwrap(),
            "ws://relay.example:9223/devtools/page/ABC?token=t0k"
        );
        assert_eq!(
            websocket_url(url, "[::1]:9223", None).unwrap(),
            "ws://[::1]:9223/devtools/page/ABC"
        );
        assert_eq!(
            websocket_url("ws://localhost:9222/x?a=1", "h:1", Some("a&b=c")).unwrap(),
            "ws://h:1/x?a=1&token=a%26b%3Dc"
        );
        assert_eq!(
            websocket_url("ws://localhost:9222", "h:1", None).unwrap(),
            "ws://h:1/"
        );
        assert!(websocket_url("http://127.0.0.1:9222/x", "h:1", None).is_none());
    }

    #[test]
    fn a_frontend_url_carries_the_relay_address_inside_ws() {
        // Another site: the address changes, the token is not handed to it.
        let appspot = "https://chrome-devtools-frontend.appspot.com/serve_rev/@abc/inspector.html?ws=127.0.0.1:9222/devtools/page/ID";
        assert_eq!(
            frontend_url(appspot, "relay:9223", Some("t0k")).unwrap(),
            "https://chrome-devtools-frontend.appspot.com/serve_rev/@abc/inspector.html?ws=relay:9223/devtools/page/ID"
        );
        let relative = "/devtools/inspector.html?ws=127.0.0.1:9222/devtools/page/ID";
        assert_eq!(
            frontend_url(relative, "relay:9223", Some("t0k")).unwrap(),
            "/devtools/inspector.html?ws=relay:9223/devtools/page/ID%3Ftoken%3Dt0k&token=t0k"
        );
        assert_eq!(
            frontend_url(relative, "relay:9223", None).unwrap(),
            "/devtools/inspector.html?ws=relay:9223/devtools/page/ID"
        );
        // An already-encoded value, other parameters and a fragment.
        assert_eq!(
            frontend_url(
                "/i.html?a=1&ws=127.0.0.1%3A9222%2Fdevtools%2Fpage%2FID#x",
                "r:1",
                Some("a b")
            )
            .unwrap(),
            "/i.html?a=1&ws=r:1/devtools/page/ID%3Ftoken%3Da%2520b&token=a%20b#x"
        );
        assert!(frontend_url("/devtools/inspector.html", "r:1", None).is_none());
    }

    #[test]
    fn objects_and_arrays_are_rewritten_and_everything_else_kept() {
        let version = br#"{"Browser":"Chrome/1","webSocketDebuggerUrl":"ws://127.0.0.1:9222/devtools/browser/B"}"#;
        let out: Value =
            serde_json::from_slice(&rewrite(version, "r:9", Some("t")).unwrap()).unwrap();
        assert_eq!(out["Browser"], "Chrome/1");
        assert_eq!(
            out["webSocketDebuggerUrl"],
            "ws://r:9/devtools/browser/B?token=t"
        );

        let list = br#"[{"id":"P","devtoolsFrontendUrl":"/devtools/inspector.html?ws=127.0.0.1:9222/devtools/page/P","devtoolsFrontendUrlCompat":"https://x.test/i.html?ws=127.0.0.1:9222/devtools/page/P","webSocketDebuggerUrl":"ws://127.0.0.1:9222/devtools/page/P","url":"ws://127.0.0.1:9222/not-rewritten"}]"#;
        let out: Value = serde_json::from_slice(&rewrite(list, "r:9", None).unwrap()).unwrap();
        assert_eq!(out[0]["webSocketDebuggerUrl"], "ws://r:9/devtools/page/P");
        assert_eq!(
            out[0]["devtoolsFrontendUrl"],
            "/devtools/inspector.html?ws=r:9/devtools/page/P"
        );
        assert_eq!(
            out[0]["devtoolsFrontendUrlCompat"],
            "https://x.test/i.html?ws=r:9/devtools/page/P"
        );
        assert_eq!(out[0]["url"], "ws://127.0.0.1:9222/not-rewritten");
    }

    #[test]
    fn an_answer_that_is_not_json_is_refused() {
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"Target activated",
            b"{\"a\":",
        ] {
            assert!(rewrite(body, "r:1", None).is_err(), "{body:?}");
        }
    }
}
