//! The fake Gitea's Git over HTTP: the smart protocol for every repository
//! the fake holds, served by the real `git http-backend` run as a CGI
//! program over the repository's bare copy on disk. Gitea's URLs
//! (`/{owner}/{repo}.git/info/refs`, `…/git-upload-pack`,
//! `…/git-receive-pack`, with or without `.git`) are mapped onto it; who
//! may read and push is decided by the fake before git runs.
//!
//! These routes are not in Gitea's API document, so nothing here is
//! checked against it.

use std::path::Path;
use std::process::Stdio;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

/// A Git request: which repository, and whether it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GitRequest {
    pub(super) owner: String,
    pub(super) repo: String,
    /// What follows the repository: `info/refs`, `git-upload-pack` or
    /// `git-receive-pack`.
    pub(super) rest: String,
    /// `git-upload-pack` (fetch) or `git-receive-pack` (push).
    pub(super) service: &'static str,
}

impl GitRequest {
    /// Whether the request can change the repository.
    pub(super) fn writes(&self) -> bool {
        self.service == "git-receive-pack"
    }

    /// The name calls and faults know it by: `info/refs`,
    /// `git-upload-pack` or `git-receive-pack`.
    pub(super) fn operation(&self) -> &str {
        if self.rest == "info/refs" {
            "info/refs"
        } else {
            self.service
        }
    }
}

/// The Git request `path` and `query` make, if they make one.
pub(super) fn parse(method: &Method, path: &str, query: Option<&str>) -> Option<GitRequest> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let owner = parts.next().filter(|s| !s.is_empty())?.to_owned();
    let repo = parts.next()?;
    let repo = repo.strip_suffix(".git").unwrap_or(repo).to_owned();
    let rest = parts.next()?.to_owned();
    let service = match (method, rest.as_str()) {
        (&Method::GET, "info/refs") => {
            let wanted = query
                .unwrap_or_default()
                .split('&')
                .find_map(|p| p.strip_prefix("service="));
            match wanted {
                Some("git-receive-pack") => "git-receive-pack",
                _ => "git-upload-pack",
            }
        }
        (&Method::POST, "git-upload-pack") => "git-upload-pack",
        (&Method::POST, "git-receive-pack") => "git-receive-pack",
        _ => return None,
    };
    Some(GitRequest {
        owner,
        repo,
        rest,
        service,
    })
}

/// Runs `git http-backend` for a request on the bare repository at
/// `project_root/path_info`, as `user`.
pub(super) async fn serve(
    project_root: &Path,
    path_info: &str,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    user: &str,
) -> Response {
    let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let mut command = tokio::process::Command::new("git");
    command
        .args([
            "-c",
            "http.receivepack=true",
            "-c",
            "safe.directory=*",
            "http-backend",
        ])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", method.as_str())
        .env(
            "CONTENT_TYPE",
            header(&header::CONTENT_TYPE).unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(encoding) = header(&header::CONTENT_ENCODING) {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        command.env("GIT_PROTOCOL", protocol);
    }
    let failed = |what: String| (StatusCode::INTERNAL_SERVER_ERROR, what).into_response();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("running git http-backend: {e}")),
    };
    let Some(mut stdin) = child.stdin.take() else {
        return failed("git http-backend has no stdin".into());
    };
    let input = body.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let output = match child.wait_with_output().await {
        Ok(output) => output,
        Err(e) => return failed(format!("waiting for git http-backend: {e}")),
    };
    let _ = writer.await;
    cgi_response(&output.stdout)
        .unwrap_or_else(|| failed(String::from_utf8_lossy(&output.stderr).into_owned()))
}

/// A CGI program's output as an HTTP response: its headers (`Status`
/// among them) up to the first empty line, then the body.
fn cgi_response(output: &[u8]) -> Option<Response> {
    let (head, body) = split_head(output)?;
    let mut status = StatusCode::OK;
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response = response.header(name, value);
        }
    }
    response.status(status).body(Body::from(body.to_vec())).ok()
}

fn split_head(output: &[u8]) -> Option<(&[u8], &[u8])> {
    for (separator, length) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(at) = output.windows(length).position(|w| w == separator) {
            return Some((&output[..at], &output[at + length..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitea_urls_name_the_repository_and_the_service() {
        let fetch = parse(
            &Method::GET,
            "/org/app.git/info/refs",
            Some("service=git-upload-pack"),
        );
        let fetch = fetch.expect("a git request");
        assert_eq!((fetch.owner.as_str(), fetch.repo.as_str()), ("org", "app"));
        assert!(!fetch.writes());
        let push = parse(&Method::POST, "/org/app/git-receive-pack", None).expect("a push");
        assert!(push.writes());
        assert_eq!(push.operation(), "git-receive-pack");
        assert!(parse(&Method::GET, "/org/app", None).is_none());
    }

    #[test]
    fn cgi_headers_become_the_response() {
        let response = cgi_response(b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno")
            .expect("a response");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain");
    }
}
