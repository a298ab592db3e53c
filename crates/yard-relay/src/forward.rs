//! The rules for what crosses the relay: which upstream it is and the
//! `Host` it is sent, which headers belong to one hop only, which `Host` a
//! client may name, and the percent-encoding the URLs need.
//!
//! Chromium answers DevTools HTTP requests only when their `Host` is an IP
//! address or `localhost` (a guard against DNS rebinding), and refuses a
//! WebSocket with a foreign `Origin` unless it was started with
//! `--remote-allow-origins`: so the relay names the upstream by its own
//! address and never forwards `Origin`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;

use crate::RelayError;

/// Where the relay forwards to.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// `host:port` as configured, what the relay connects to.
    pub(crate) authority: Authority,
    /// The `Host` sent upstream.
    pub(crate) host: HeaderValue,
}

impl Upstream {
    /// Parses `host:port`; the port is required.
    pub(crate) fn parse(text: &str) -> Result<Self, RelayError> {
        let invalid = || RelayError::InvalidUpstream(text.to_owned());
        let authority: Authority = text.trim().parse().map_err(|_| invalid())?;
        let port = authority.port_u16().ok_or_else(invalid)?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(invalid());
        }
        let host = upstream_host(&authority, port);
        let host = HeaderValue::from_str(&host).map_err(|_| invalid())?;
        Ok(Self { authority, host })
    }
}

/// The upstream's own authority when its host is an IP literal, else
/// `localhost:<port>`: the only names Chromium's DevTools accepts.
fn upstream_host(authority: &Authority, port: u16) -> String {
    let host = authority.host();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if literal.parse::<IpAddr>().is_ok() {
        authority.as_str().to_owned()
    } else {
        format!("localhost:{port}")
    }
}

/// The protocol a request asks to switch to (`Upgrade: websocket`), when it
/// really asks: `Connection` must name `upgrade` too.
pub(crate) fn requested_upgrade(headers: &HeaderMap) -> Option<&HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    connection_options(headers)
        .any(|option| option.eq_ignore_ascii_case("upgrade"))
        .then_some(upgrade)
}

/// The options the `Connection` headers list.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, including any the `Connection` header
/// names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_options(headers)
            .filter_map(|name| HeaderName::try_from(name).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether `text` is a plausible `host[:port]` for URLs handed back to the
/// client: a DNS name or IP address, an optional port, nothing else (no
/// path, credentials, spaces or escapes that would bend the URL).
pub(crate) fn plausible_authority(text: &str) -> bool {
    if text.is_empty() || text.len() > 262 {
        return false;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

/// Percent-encodes `text`, keeping unreserved characters (RFC 3986) and
/// the bytes in `keep`.
pub(crate) fn percent_encode(text: &str, keep: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is, and bytes that do not make UTF-8 become U+FFFD.
pub(crate) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_host_is_its_ip_literal_or_localhost() {
        let cases = [
            ("127.0.0.1:9222", "127.0.0.1:9222"),
            ("[::1]:9222", "[::1]:9222"),
            ("10.0.0.7:6080", "10.0.0.7:6080"),
            ("localhost:9222", "localhost:9222"),
            ("chromium:9222", "localhost:9222"),
            ("browser.internal:9229", "localhost:9229"),
        ];
        for (upstream, host) in cases {
            assert_eq!(Upstream::parse(upstream).unwrap().host, host, "{upstream}");
        }
    }

    #[test]
    fn an_upstream_needs_a_host_and_a_port() {
        for bad in [
            "",
            "127.0.0.1",
            "http://127.0.0.1:9222",
            "a b:1",
            "user@host:1",
            ":9222",
        ] {
            assert!(
                matches!(Upstream::parse(bad), Err(RelayError::InvalidUpstream(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_plausible_authorities_pass() {
        for good in [
            "localhost",
            "localhost:9223",
            "203.0.113.9:9223",
            "relay.example.com",
            "my_host:1",
            "[::1]",
            "[::1]:9223",
            "[2001:db8::1]:80",
        ] {
            assert!(plausible_authority(good), "{good:?}");
        }
        for bad in [
            "",
            "evil.com/x",
            "user@host",
            "host:port",
            "host:99999",
            "host:",
            "a b",
            "host\t",
            "[::1",
            "[::1]x",
            "[]",
            "[::1]:",
            "host?x",
            "host#x",
            "ho%73t",
            "h\"ost",
            "ホスト",
            ":9223",
        ] {
            assert!(!plausible_authority(bad), "{bad:?}");
        }
        assert!(!plausible_authority(&"a".repeat(300)));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_with_the_ones_connection_names() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn an_upgrade_counts_only_when_connection_names_it() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(requested_upgrade(&headers).is_none());
        headers.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert_eq!(requested_upgrade(&headers).unwrap(), "websocket");
    }

    #[test]
    fn percent_coding_round_trips() {
        let text = "a b/c?d=e&f%g~h";
        let encoded = percent_encode(text, b"/");
        assert_eq!(encoded, "a%20b/c%3Fd%3De%26f%25g~h");
        assert_eq!(percent_decode(&encoded), text);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
