//! Where the yard reaches a running stack: a scheme, an authority and the
//! `Host` to send. A local engine gives `http://127.0.0.1:PORT`; a cluster
//! gives a service name on a shared network or a host-mode published port;
//! Dokploy gives the domain its Traefik serves, which only answers for the
//! right `Host`. The backend decides; the router only follows.

use std::fmt;

/// How to speak to a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Where a stack answers HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    /// `host:port` (or a bare host) to connect to.
    authority: String,
    /// The `Host` header the stack expects, when it is not the authority.
    host: Option<String>,
}

impl Endpoint {
    /// Plain HTTP to `authority` (`host:port`).
    pub fn http(authority: impl Into<String>) -> Self {
        Self {
            scheme: Scheme::Http,
            authority: authority.into(),
            host: None,
        }
    }

    /// HTTPS to `authority`.
    pub fn https(authority: impl Into<String>) -> Self {
        Self {
            scheme: Scheme::Https,
            authority: authority.into(),
            host: None,
        }
    }

    /// The same endpoint, asking for `host` in the `Host` header (a reverse
    /// proxy in front of many stacks picks the stack by it).
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The `Host` the stack asks for, when it is not the authority.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The `Host` header to send: the named one, or the authority.
    pub fn host_header(&self) -> &str {
        self.host.as_deref().unwrap_or(&self.authority)
    }

    /// The URL of `path_and_query` (which starts with `/`) at this endpoint.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{path_and_query}",
            self.scheme.as_str(),
            self.authority
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority)?;
        if let Some(host) = &self.host {
            write!(f, " (Host: {host})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_says_where_to_connect_and_which_host_to_ask_for() {
        let local = Endpoint::http("127.0.0.1:8080");
        assert_eq!(local.url("/x?y"), "http://127.0.0.1:8080/x?y");
        assert_eq!(local.host_header(), "127.0.0.1:8080");
        assert_eq!(local.to_string(), "http://127.0.0.1:8080");
        let routed = Endpoint::http("10.0.0.5:80").with_host("alice.apps.example");
        assert_eq!(routed.host_header(), "alice.apps.example");
        assert_eq!(routed.url("/"), "http://10.0.0.5:80/");
        assert_eq!(
            routed.to_string(),
            "http://10.0.0.5:80 (Host: alice.apps.example)"
        );
        assert_eq!(Endpoint::https("a.example").scheme(), Scheme::Https);
    }
}
