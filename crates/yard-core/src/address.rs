//! Where a stack is reached: its public URL and the host names that route to it.
//!
//! Both directions live together so they cannot drift apart: the URL the
//! yard hands out for `alice` is exactly the one whose Host header the host
//! router maps back to `alice`.

use crate::StackName;

/// How stack addresses are formed.
#[derive(Debug, Clone)]
pub struct StackAddressing {
    domain: String,
    url_template: String,
}

impl StackAddressing {
    /// `domain` is the parent of every stack's host name (`localhost` makes
    /// `alice.localhost`). `url_template` is the URL handed out, with `{name}`
    /// standing for the stack's name; when `None`, it is
    /// `http://{name}.<domain>:<port>`.
    pub fn new(domain: &str, port: u16, url_template: Option<&str>) -> Self {
        let domain = domain.trim().trim_matches('.').to_lowercase();
        let url_template = match url_template {
            Some(template) => template.to_owned(),
            None => format!("http://{{name}}.{domain}:{port}"),
        };
        Self {
            domain,
            url_template,
        }
    }

    /// The parent domain of stack host names.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The URL people use to reach `name`.
    pub fn url_for(&self, name: &StackName) -> String {
        self.url_template.replace("{name}", name.as_str())
    }

    /// The stack a request's Host header points at, if any: `alice` for
    /// `alice.localhost:3000`. Only one label below the domain counts, so
    /// `x.alice.localhost` and the bare domain route nowhere.
    pub fn stack_for_host<'h>(&self, host: &'h str) -> Option<&'h str> {
        let host = strip_port(host);
        let label = host
            .len()
            .checked_sub(self.domain.len() + 1)
            .filter(|&cut| {
                host.is_char_boundary(cut)
                    && host[cut..].starts_with('.')
                    && host[cut + 1..].eq_ignore_ascii_case(&self.domain)
            })
            .map(|cut| &host[..cut])?;
        (!label.is_empty() && !label.contains('.')).then_some(label)
    }
}

/// `host:port` → `host`; IPv6 literals (`[::1]:3000`) keep their brackets.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_uses_domain_and_port() {
        let addressing = StackAddressing::new("localhost", 3000, None);
        let alice = StackName::from_trusted("alice");
        assert_eq!(addressing.url_for(&alice), "http://alice.localhost:3000");
    }

    #[test]
    fn template_overrides_the_url() {
        let addressing =
            StackAddressing::new("example.com", 3000, Some("https://{name}.example.com"));
        let bob = StackName::from_trusted("bob");
        assert_eq!(addressing.url_for(&bob), "https://bob.example.com");
        assert_eq!(addressing.stack_for_host("bob.example.com"), Some("bob"));
    }

    #[test]
    fn host_maps_back_to_the_stack() {
        let addressing = StackAddressing::new("localhost", 3000, None);
        assert_eq!(
            addressing.stack_for_host("alice.localhost:3000"),
            Some("alice")
        );
        assert_eq!(addressing.stack_for_host("ALICE.LocalHost"), Some("ALICE"));
        assert_eq!(addressing.stack_for_host("localhost:3000"), None);
        assert_eq!(addressing.stack_for_host(".localhost"), None);
        assert_eq!(addressing.stack_for_host("x.alice.localhost"), None);
        assert_eq!(addressing.stack_for_host("alicelocalhost"), None);
        assert_eq!(addressing.stack_for_host("127.0.0.1:3000"), None);
        assert_eq!(addressing.stack_for_host("[::1]:3000"), None);
        assert_eq!(addressing.stack_for_host("é.localhost"), Some("é"));
    }
}
