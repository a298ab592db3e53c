//! The fake Gitea's contract: Gitea's own Swagger 2.0 document (vendored
//! unmodified in `specs/gitea-swagger.json`), which operation a request is,
//! and how a request or one of the fake's answers breaks the document.
//!
//! A request is checked the way Gitea's router and binding read it: the
//! path must match a documented template and method; integer path
//! parameters must be integers; query parameters must be documented and of
//! their type (the security ones, `token`, `access_token` and `sudo`,
//! always are); an operation that takes a body needs a JSON content type
//! and a body of its schema. An answer is checked for its status (a
//! success must be one the operation documents; Gitea's documented errors
//! are incomplete, so errors are only checked for their shape) and its
//! body (the documented schema, with no field the document does not know).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::schema::{Checker, Direction};

/// Gitea's Swagger document, as Gitea publishes it.
const DOCUMENT: &str = include_str!("../../specs/gitea-swagger.json");

/// Gitea's Swagger document, parsed once per test process.
pub fn gitea_swagger() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(DOCUMENT).expect("specs/gitea-swagger.json is JSON"))
}

/// Query parameters every operation takes (the document's security
/// definitions).
const SECURITY_QUERY: [&str; 3] = ["token", "access_token", "sudo"];

#[derive(Debug)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

#[derive(Debug)]
struct Template {
    path: &'static str,
    segments: Vec<Segment>,
}

fn templates() -> &'static [Template] {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        gitea_swagger()["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, _)| Template {
                path: path.as_str(),
                segments: path
                    .trim_start_matches('/')
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Segment::Param(name),
                            None => Segment::Literal(s),
                        },
                    )
                    .collect(),
            })
            .collect()
    })
}

/// A documented operation a request matched.
#[derive(Debug, Clone)]
pub(super) struct Operation {
    /// Its `operationId`, e.g. `adminCreateUser`.
    pub(super) id: &'static str,
    /// `POST /admin/users`.
    pub(super) name: String,
    spec: &'static Value,
    /// The parameters of the path item and the operation.
    parameters: Vec<&'static Value>,
    /// Path parameters, decoded.
    pub(super) path: BTreeMap<String, String>,
}

/// What a request path and method are in the document.
#[derive(Debug)]
pub(super) enum Lookup {
    Found(Operation),
    NoPath,
    NoMethod(&'static str),
}

/// The operation `method` on `path` (below `/api/v1`) is. Where several
/// templates match, the one with literal segments earliest wins, as in
/// Gitea's router (`/repos/issues/search` before `/repos/{owner}/{repo}`).
pub(super) fn lookup(method: &Method, path: &str) -> Lookup {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let best = templates()
        .iter()
        .filter(|t| {
            t.segments.len() == parts.len()
                && t.segments.iter().zip(&parts).all(|(s, p)| match s {
                    Segment::Literal(l) => l == p,
                    Segment::Param(_) => !p.is_empty(),
                })
        })
        .max_by_key(|t| {
            t.segments
                .iter()
                .map(|s| matches!(s, Segment::Literal(_)))
                .collect::<Vec<_>>()
        });
    let Some(template) = best else {
        return Lookup::NoPath;
    };
    let item = &gitea_swagger()["paths"][template.path];
    let verb = method.as_str().to_ascii_lowercase();
    let Some(spec) = item.get(&verb) else {
        return Lookup::NoMethod(template.path);
    };
    let mut parameters: Vec<&'static Value> = spec["parameters"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for shared in item["parameters"].as_array().into_iter().flatten() {
        if !parameters
            .iter()
            .any(|p| p["name"] == shared["name"] && p["in"] == shared["in"])
        {
            parameters.push(shared);
        }
    }
    let path = template
        .segments
        .iter()
        .zip(&parts)
        .filter_map(|(s, p)| match s {
            Segment::Param(name) => Some(((*name).to_owned(), percent_decode(p))),
            Segment::Literal(_) => None,
        })
        .collect();
    Lookup::Found(Operation {
        id: spec["operationId"].as_str().unwrap_or("unnamed"),
        name: format!("{} {}", method, template.path),
        spec,
        parameters,
        path,
    })
}

/// A request as checked: its query and body, every way it breaks the
/// document, and the answer Gitea would give instead of serving it.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) query: BTreeMap<String, Vec<String>>,
    /// The JSON body (`{}` when the operation takes one and none came).
    pub(super) body: Value,
    pub(super) problems: Vec<String>,
    pub(super) refusal: Option<(StatusCode, String)>,
}

impl Operation {
    /// Checks a request for this operation against the document.
    pub(super) fn check_request(
        &self,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Checked {
        let document = gitea_swagger();
        let checker = Checker::new(document, Direction::Request);
        let mut checked = Checked {
            query: BTreeMap::new(),
            body: Value::Null,
            problems: Vec::new(),
            refusal: None,
        };
        let refuse = |checked: &mut Checked, status: StatusCode, message: String| {
            checked.refusal.get_or_insert((status, message));
        };

        for parameter in self.parameters.iter().filter(|p| p["in"] == "path") {
            let name = parameter["name"].as_str().unwrap_or_default();
            let Some(raw) = self.path.get(name) else {
                checked
                    .problems
                    .push(format!("path parameter {name:?} is not in the path"));
                continue;
            };
            let problems = checker.check(&parameter_schema(parameter), &typed(parameter, raw));
            if !problems.is_empty() {
                checked.problems.extend(
                    problems
                        .iter()
                        .map(|p| format!("path parameter {name}: {}", p.what)),
                );
                // Gitea reads a bad integer as 0, which names nothing.
                refuse(
                    &mut checked,
                    StatusCode::NOT_FOUND,
                    "The target couldn't be found.".into(),
                );
            }
        }

        let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://fake/?{query}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        for (name, raw) in pairs {
            checked.query.entry(name.clone()).or_default().push(raw);
        }
        for (name, values) in &checked.query {
            if SECURITY_QUERY.contains(&name.as_str()) {
                continue;
            }
            let Some(parameter) = self
                .parameters
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == name.as_str())
            else {
                checked.problems.push(format!(
                    "query parameter {name:?} is not in the document, so Gitea ignores it"
                ));
                continue;
            };
            let schema = parameter_schema(parameter);
            let many = parameter["type"] == "array";
            if values.len() > 1 && !many {
                checked
                    .problems
                    .push(format!("query parameter {name:?} is given more than once"));
            }
            let value = if many {
                Value::Array(
                    values
                        .iter()
                        .map(|v| typed(&parameter["items"], v))
                        .collect(),
                )
            } else {
                typed(parameter, &values[0])
            };
            checked.problems.extend(
                checker
                    .check(&schema, &value)
                    .iter()
                    .map(|p| format!("query parameter {name}: {}", p.what)),
            );
        }
        for parameter in self.parameters.iter().filter(|p| p["in"] == "query") {
            let name = parameter["name"].as_str().unwrap_or_default();
            if parameter["required"] == true && !checked.query.contains_key(name) {
                checked
                    .problems
                    .push(format!("query parameter {name:?} is required but missing"));
            }
        }

        match self.parameters.iter().find(|p| p["in"] == "body") {
            None => {
                if !body.is_empty() {
                    checked.problems.push(
                        "a body, where the document describes none (Gitea ignores it)".into(),
                    );
                }
            }
            Some(parameter) => {
                let content_type = content_type.unwrap_or_default();
                if !content_type.contains("json") {
                    let what = if content_type.is_empty() {
                        "Empty Content-Type".to_owned()
                    } else {
                        format!("Unsupported Content-Type {content_type:?}")
                    };
                    checked
                        .problems
                        .push(format!("{what}: the document takes application/json"));
                    refuse(&mut checked, StatusCode::UNPROCESSABLE_ENTITY, what);
                }
                let value = if body.iter().all(u8::is_ascii_whitespace) {
                    if parameter["required"] == true {
                        checked
                            .problems
                            .push("no body, where the document requires one".into());
                    }
                    json!({})
                } else {
                    match serde_json::from_slice::<Value>(body) {
                        Ok(Value::Null) => json!({}),
                        Ok(value) => value,
                        Err(e) => {
                            checked.problems.push(format!("the body is not JSON: {e}"));
                            refuse(
                                &mut checked,
                                StatusCode::UNPROCESSABLE_ENTITY,
                                format!("[]: DeserializationError: {e}"),
                            );
                            json!({})
                        }
                    }
                };
                for problem in checker.check(&parameter["schema"], &value) {
                    checked.problems.push(format!("body {problem}"));
                    if problem.refused {
                        refuse(
                            &mut checked,
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("[{}]: {}", problem.at, problem.what),
                        );
                    }
                }
                checked.body = value;
            }
        }
        checked
    }

    /// How an answer of the fake breaks the document.
    pub(super) fn check_response(&self, status: StatusCode, body: Option<&Value>) -> Vec<String> {
        let document = gitea_swagger();
        let checker = Checker::new(document, Direction::Response);
        let documented = self.spec["responses"]
            .get(status.as_str())
            .map(|r| resolve(document, r));
        let mut problems = Vec::new();
        if status.is_success() {
            let Some(response) = documented else {
                problems.push(format!("status {status} is not a documented answer"));
                return problems;
            };
            match (response.get("schema"), body) {
                (Some(schema), Some(body)) => problems.extend(
                    checker
                        .check(schema, body)
                        .iter()
                        .map(|p| format!("answer {p}")),
                ),
                (Some(_), None) => problems.push("no body, where the document gives one".into()),
                (None, Some(_)) => problems.push("a body, where the document gives none".into()),
                (None, None) => {}
            }
        } else if let Some(body) = body {
            // Errors are Gitea's APIError: a message and the docs' URL.
            let schema = json!({"$ref": "#/definitions/APIError"});
            let mut allowed = body.clone();
            if let Some(fields) = allowed.as_object_mut() {
                // A 404 also lists the errors that led to it.
                fields.remove("errors");
            }
            problems.extend(
                checker
                    .check(&schema, &allowed)
                    .iter()
                    .map(|p| format!("error answer {p}")),
            );
        }
        problems
    }
}

/// A `$ref` to `#/responses/…` resolved.
fn resolve<'a>(document: &'a Value, response: &'a Value) -> &'a Value {
    response["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| document.pointer(pointer))
        .unwrap_or(response)
}

/// The schema part of a Swagger 2.0 (non-body) parameter.
fn parameter_schema(parameter: &Value) -> Value {
    let mut schema = serde_json::Map::new();
    for key in ["type", "format", "enum", "items", "minimum", "maximum"] {
        if let Some(value) = parameter.get(key) {
            schema.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(schema)
}

/// A path or query text as the JSON value Gitea reads from it: integers
/// and booleans parsed (as Go's `strconv` would), the rest left as text.
fn typed(parameter: &Value, raw: &str) -> Value {
    match parameter["type"].as_str() {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Some("boolean") => match raw {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Value::Bool(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        _ => Value::String(raw.to_owned()),
    }
}

/// `%XX` escapes decoded (a path segment; `+` stays itself).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let Lookup::Found(op) = lookup(&Method::GET, "/repos/issues/search") else {
            panic!("no match");
        };
        assert_eq!(op.id, "issueSearchIssues");
        let Lookup::Found(op) = lookup(&Method::GET, "/repos/o/r") else {
            panic!("no match");
        };
        assert_eq!(op.id, "repoGet");
        assert_eq!(op.path["owner"], "o");
        assert!(matches!(
            lookup(&Method::PUT, "/version"),
            Lookup::NoMethod(_)
        ));
        assert!(matches!(
            lookup(&Method::GET, "/no/such/thing/here"),
            Lookup::NoPath
        ));
    }

    #[test]
    fn the_fakes_answers_are_held_to_the_document() {
        let Lookup::Found(op) = lookup(&Method::GET, "/users/someone") else {
            panic!("no match");
        };
        let good = json!({"id": 1, "login": "someone", "created": "2025-01-01T00:00:00Z"});
        assert!(op.check_response(StatusCode::OK, Some(&good)).is_empty());
        let extra = json!({"id": 1, "login": "someone", "username": "someone"});
        assert_eq!(op.check_response(StatusCode::OK, Some(&extra)).len(), 1);
        let wrong = json!({"id": "1", "created": "yesterday"});
        assert_eq!(op.check_response(StatusCode::OK, Some(&wrong)).len(), 2);
        assert_eq!(op.check_response(StatusCode::CREATED, Some(&good)).len(), 1);
    }

    #[test]
    fn a_wrongly_typed_body_is_refused() {
        let Lookup::Found(op) = lookup(&Method::POST, "/admin/users") else {
            panic!("no match");
        };
        let ok = op.check_request(
            "",
            Some("application/json"),
            br#"{"username":"a","email":"a@example.com"}"#,
        );
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        let bad = op.check_request("", Some("application/json"), br#"{"username":1}"#);
        assert_eq!(
            bad.refusal.map(|r| r.0),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(bad.problems.len(), 2, "{:?}", bad.problems);
    }
}
