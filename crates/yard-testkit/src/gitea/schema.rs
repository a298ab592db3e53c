//! The fake Gitea's schema checker: the JSON Schema subset of Gitea's
//! Swagger 2.0 document (`$ref`, `type`, `format`, `enum`, `properties`,
//! `required`, `additionalProperties`, `items`, `allOf`, `minimum` and
//! `maximum`; annotations and `x-` extensions are skipped), read the way
//! Gitea reads JSON: with Go's decoder and its binding.
//!
//! So each problem says whether Gitea would refuse the request for it. A
//! value of the wrong JSON type, a fraction where an integer goes, a time
//! that is not RFC 3339, a missing required property or a value outside an
//! enum make Go's decoder or Gitea's binding fail (Gitea answers 422; a
//! missing required number or flag is Go's zero value and passes); a
//! property the document does not know is dropped by the decoder without a
//! word, which is a violation all the same (the client believes it said
//! something Gitea never heard), but not a refusal. A `null` is Go's zero
//! value, accepted anywhere below the top.
//!
//! A keyword the checker does not know is a problem, not a pass: a checker
//! that skipped what it did not understand would let through exactly what
//! it was meant to catch.

use serde_json::Value;

/// Keywords that say nothing about validity here.
const ANNOTATIONS: [&str; 8] = [
    "description",
    "title",
    "example",
    "default",
    "readOnly",
    "uniqueItems",
    "collectionFormat",
    "xml",
];

/// One way a value breaks a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Where, as `$.a.b[0]`.
    pub(super) at: String,
    pub(super) what: String,
    /// Whether Gitea refuses a request for it.
    pub(super) refused: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// Which way the value travels: a request Gitea decodes, or an answer the
/// fake gives (which must stay within the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Request,
    Response,
}

/// Checks values against schemas of one document.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checker<'a> {
    root: &'a Value,
    direction: Direction,
}

impl<'a> Checker<'a> {
    /// A checker resolving `$ref`s in `root` (the whole Swagger document).
    pub(super) fn new(root: &'a Value, direction: Direction) -> Self {
        Self { root, direction }
    }

    /// Every way `value` breaks `schema`; empty when it conforms.
    pub(super) fn check(&self, schema: &Value, value: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.walk(schema, value, "$", &mut problems, 0);
        problems
    }

    fn problem(&self, problems: &mut Vec<Problem>, at: &str, what: String, refused: bool) {
        problems.push(Problem {
            at: at.to_owned(),
            what,
            refused: refused && self.direction == Direction::Request,
        });
    }

    fn walk(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        problems: &mut Vec<Problem>,
        depth: usize,
    ) {
        if depth > 64 {
            self.problem(problems, at, "the schema nests too deep".into(), false);
            return;
        }
        let Some(schema) = schema.as_object() else {
            self.problem(
                problems,
                at,
                format!("the schema {schema} is not an object"),
                false,
            );
            return;
        };
        // Go decodes null into the zero value, and encodes nil pointers,
        // slices and maps as null.
        if value.is_null() && (at != "$" || self.direction == Direction::Request) {
            return;
        }
        for (keyword, rule) in schema {
            match keyword.as_str() {
                "$ref" => match rule.as_str().and_then(|r| self.resolve(r)) {
                    Some(target) => self.walk(target, value, at, problems, depth + 1),
                    None => self.problem(problems, at, format!("cannot resolve $ref {rule}"), false),
                },
                "allOf" => {
                    for part in rule.as_array().into_iter().flatten() {
                        self.walk(part, value, at, problems, depth + 1);
                    }
                }
                "type" => self.check_type(rule, value, at, problems),
                "format" => self.check_format(rule, value, at, problems),
                "enum" => self.check_enum(rule, value, at, problems),
                "minimum" | "maximum" => self.check_bound(keyword, rule, value, at, problems),
                "properties" | "required" | "additionalProperties" | "items" => {}
                other if ANNOTATIONS.contains(&other) || other.starts_with("x-") => {}
                other => self.problem(
                    problems,
                    at,
                    format!("the checker does not know the keyword {other:?}, so it cannot check this value"),
                    false,
                ),
            }
        }
        match value {
            Value::Object(object) => self.check_object(schema, object, at, problems, depth),
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.walk(item, v, &format!("{at}[{i}]"), problems, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// The schema a local `$ref` (`#/…`) points at.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    fn check_type(&self, rule: &Value, value: &Value, at: &str, problems: &mut Vec<Problem>) {
        let Some(name) = rule.as_str() else {
            self.problem(problems, at, format!("type {rule} is not a name"), false);
            return;
        };
        let fits = match name {
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            // Go's decoder refuses a fraction or an exponent for an integer.
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "file" => true,
            other => {
                self.problem(problems, at, format!("unknown type {other:?}"), false);
                return;
            }
        };
        if !fits {
            self.problem(
                problems,
                at,
                format!("expected {name}, found {}", kind(value)),
                true,
            );
        }
    }

    fn check_format(&self, rule: &Value, value: &Value, at: &str, problems: &mut Vec<Problem>) {
        match (rule.as_str(), value) {
            (Some("int64"), Value::Number(n)) if n.is_u64() && n.as_i64().is_none() => {
                self.problem(problems, at, format!("{n} does not fit an int64"), true);
            }
            (Some("int32"), Value::Number(n))
                if n.as_i64().is_some_and(|i| i32::try_from(i).is_err()) =>
            {
                self.problem(problems, at, format!("{n} does not fit an int32"), true);
            }
            (Some("uint64"), Value::Number(n)) if n.as_i64().is_some_and(|i| i < 0) => {
                self.problem(problems, at, format!("{n} does not fit a uint64"), true);
            }
            (Some("date-time"), Value::String(text)) if !is_rfc3339(text) => self.problem(
                problems,
                at,
                format!("{text:?} is not an RFC 3339 time (Go's time.Time refuses it)"),
                true,
            ),
            (Some("date"), Value::String(text)) if !is_date(text) => {
                self.problem(problems, at, format!("{text:?} is not a date"), false);
            }
            _ => {}
        }
    }

    fn check_enum(&self, rule: &Value, value: &Value, at: &str, problems: &mut Vec<Problem>) {
        let Some(options) = rule.as_array() else {
            self.problem(problems, at, "enum is not a list".into(), false);
            return;
        };
        // An empty string is Go's zero value: "not given".
        let zero = self.direction == Direction::Request && value.as_str() == Some("");
        if !zero && !options.contains(value) {
            self.problem(problems, at, format!("{value} is not one of {rule}"), true);
        }
    }

    fn check_bound(
        &self,
        keyword: &str,
        rule: &Value,
        value: &Value,
        at: &str,
        problems: &mut Vec<Problem>,
    ) {
        let (Some(bound), Some(n)) = (rule.as_f64(), value.as_f64()) else {
            return;
        };
        let outside = if keyword == "minimum" {
            n < bound
        } else {
            n > bound
        };
        if outside {
            self.problem(
                problems,
                at,
                format!("{n} is outside its {keyword} {bound}"),
                false,
            );
        }
    }

    fn check_object(
        &self,
        schema: &serde_json::Map<String, Value>,
        object: &serde_json::Map<String, Value>,
        at: &str,
        problems: &mut Vec<Problem>,
        depth: usize,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                // Gitea's binding refuses a missing string, list or object
                // (`binding:"Required"`); a number or a flag the document
                // calls required is Go's zero value all the same.
                let kind = properties
                    .and_then(|p| p.get(name))
                    .and_then(|p| p.get("type"))
                    .and_then(Value::as_str);
                let refused = !matches!(kind, Some("integer" | "number" | "boolean"));
                self.problem(
                    problems,
                    at,
                    format!("{name:?} is required but missing"),
                    refused,
                );
            }
        }
        for (name, value) in object {
            let here = format!("{at}.{name}");
            if let Some(property) = properties.and_then(|p| p.get(name)) {
                self.walk(property, value, &here, problems, depth + 1);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    self.problem(problems, &here, "not allowed".into(), false);
                }
                Some(extra @ Value::Object(_)) => {
                    self.walk(extra, value, &here, problems, depth + 1);
                }
                _ if properties.is_some() => {
                    let what = match self.direction {
                        Direction::Request => {
                            "not in Gitea's document, so Gitea drops it without a word"
                        }
                        Direction::Response => "not in Gitea's document, yet the fake answers it",
                    };
                    self.problem(problems, &here, what.into(), false);
                }
                _ => {}
            }
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number with a fraction",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2
        && digits(y) && digits(m) && digits(d))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, what Go's `time.Time`
/// decodes.
pub(super) fn is_rfc3339(text: &str) -> bool {
    let Some((date, rest)) = text.split_once(['T', 't']) else {
        return false;
    };
    if !is_date(date) || rest.len() < 9 {
        return false;
    }
    let (clock, zone) = rest.split_at(8);
    let clock_ok = matches!(clock.split(':').collect::<Vec<_>>().as_slice(),
        [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 && digits(h) && digits(m) && digits(s));
    let zone = match zone.strip_prefix('.') {
        Some(fraction) => {
            let end = fraction
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(fraction.len());
            if end == 0 {
                return false;
            }
            &fraction[end..]
        }
        None => zone,
    };
    let zone_ok = zone == "Z"
        || zone == "z"
        || (zone.len() == 6
            && zone.starts_with(['+', '-'])
            && matches!(zone[1..].split(':').collect::<Vec<_>>().as_slice(),
                [h, m] if h.len() == 2 && m.len() == 2 && digits(h) && digits(m)));
    clock_ok && zone_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_read_as_go_reads_them() {
        assert!(is_rfc3339("2025-01-01T00:00:05Z"));
        assert!(is_rfc3339("2025-01-01T00:00:05.123+02:00"));
        assert!(!is_rfc3339("2025-01-01 00:00:05"));
        assert!(!is_rfc3339("yesterday"));
    }

    #[test]
    fn a_wrong_type_is_refused_and_an_unknown_field_is_not() {
        let root = json!({"definitions": {"O": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "n": {"type": "integer", "format": "int64"}},
        }}});
        let schema = json!({"$ref": "#/definitions/O"});
        let checker = Checker::new(&root, Direction::Request);
        assert!(
            checker
                .check(&schema, &json!({"name": "a", "n": 3}))
                .is_empty()
        );
        let problems = checker.check(&schema, &json!({"name": 1, "n": 1.5, "extra": true}));
        assert_eq!(
            problems.iter().filter(|p| p.refused).count(),
            2,
            "{problems:?}"
        );
        assert_eq!(
            problems.iter().filter(|p| !p.refused).count(),
            1,
            "{problems:?}"
        );
        let missing = checker.check(&schema, &json!({}));
        assert!(missing[0].refused && missing[0].what.contains("required"));
    }
}
