//! Container image references, checked before any engine sees them.
//!
//! A reference from a request is hostile until it parses: the grammar is
//! Docker's (`[registry[:port]/]path[:tag][@digest]`, lowercase path
//! components separated by `.`, `_`, `__` or dashes), plus a local image id
//! (`sha256:<64 hex>`). A reference that does not parse is the caller's
//! mistake, answered as such, never the engine's.

use std::fmt;

/// Longest reference accepted (Docker's own limit on the name is 255).
const MAX_REFERENCE: usize = 512;

/// A reference that parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef(String);

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{reference:?} is not an image reference ({why}); write it as [registry/]name[:tag][@sha256:digest], lowercase, e.g. agentyard/agent:latest"
)]
pub struct ImageRefError {
    pub reference: String,
    pub why: &'static str,
}

impl ImageRef {
    pub fn parse(raw: &str) -> Result<Self, ImageRefError> {
        let fail = |why| ImageRefError {
            reference: raw.chars().take(100).collect(),
            why,
        };
        if raw.is_empty() {
            return Err(fail("it is empty"));
        }
        if raw.len() > MAX_REFERENCE {
            return Err(fail("it is too long"));
        }
        if let Some(hex) = raw.strip_prefix("sha256:") {
            return if hex.len() == 64 && hex.chars().all(is_lower_hex) {
                Ok(Self(raw.to_owned()))
            } else {
                Err(fail("an image id is sha256: and 64 hex digits"))
            };
        }
        let (rest, digest) = match raw.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (raw, None),
        };
        if let Some(digest) = digest {
            let (algorithm, hex) = digest
                .split_once(':')
                .ok_or_else(|| fail("a digest is algorithm:hex"))?;
            let algorithm_ok = !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
            if !algorithm_ok || hex.len() < 32 || !hex.chars().all(is_lower_hex) {
                return Err(fail("a digest is algorithm:hex"));
            }
        }
        // A tag follows the last ':' after the last '/' (an earlier ':' is
        // a registry's port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let mut chars = tag.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok
                || tag.len() > 128
                || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(fail("a tag is up to 128 of letters, digits, '_', '.', '-'"));
            }
        }
        if name.is_empty() || name.len() > 255 {
            return Err(fail("the name is empty or longer than 255"));
        }
        let mut components: Vec<&str> = name.split('/').collect();
        // The first component is a registry when it looks like a host.
        if components.len() > 1 {
            let first = components[0];
            if first.contains('.') || first.contains(':') || first == "localhost" {
                if !is_registry(first) {
                    return Err(fail("the registry is not host[:port]"));
                }
                components.remove(0);
            }
        }
        if !components.iter().all(|c| is_path_component(c)) {
            return Err(fail(
                "name components are lowercase letters and digits, joined by '.', '_', '__' or '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reference as the engine resolves it: with `:latest` when it
    /// names neither a tag nor a digest nor an id.
    pub fn normalized(&self) -> String {
        let last = self.0.rsplit('/').next().unwrap_or_default();
        if self.0.starts_with("sha256:") || self.0.contains('@') || last.contains(':') {
            self.0.clone()
        } else {
            format!("{}:latest", self.0)
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_lower_hex(c: char) -> bool {
    c.is_ascii_digit() || ('a'..='f').contains(&c)
}

fn is_registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    port_ok && name_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
        expect_alnum = true;
    }
    !expect_alnum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_references_parse() {
        for good in [
            "busybox",
            "agentyard/agent:latest",
            "agentyard-test/agent:0a1b2c3d",
            "registry.example.com:5000/team/app:v1.2",
            "localhost/x",
            "a__b/c-d--e.f:g_h",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(ImageRef::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn bad_references_are_refused_with_the_reason() {
        for bad in [
            "",
            "Busybox",
            "bad image",
            "a//b",
            "-x",
            "x-",
            "x:",
            "x:-tag",
            "x@sha256:zz",
            "sha256:abc",
            "../etc/passwd",
            "host:99999/x",
            "x;rm -rf /",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("not an image reference"), "{bad}");
        }
    }

    #[test]
    fn normalized_adds_latest_only_when_nothing_is_named() {
        let n = |raw: &str| ImageRef::parse(raw).unwrap().normalized();
        assert_eq!(n("agentyard/agent"), "agentyard/agent:latest");
        assert_eq!(n("agentyard/agent:1"), "agentyard/agent:1");
        assert_eq!(n("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
