//! A minimal JSON Schema validator, for the subset Dokploy's OpenAPI 3.1
//! document uses: `type` (one or a list; `integer` is a number without a
//! fraction), `properties`, `required`, `additionalProperties`,
//! `propertyNames`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`, `not`,
//! `items`, `minItems`/`maxItems`, `nullable` (OpenAPI 3.0's), string
//! lengths and `pattern`, numeric bounds and `multipleOf`, and `$ref`s into
//! the document. Annotations (`description`, `example`, `default`, `format`
//! and the like) are ignored.
//!
//! A keyword it does not know is a violation, not a pass: a validator that
//! skipped what it did not understand would let through exactly what it
//! was meant to catch.
//!
//! With [`SchemaValidator::closed`], an object's properties not declared
//! in `properties` are violations even where the schema allows them: Dokploy
//! validates input with zod, which drops undeclared keys without a word, so
//! a field the document does not know is a field Dokploy ignores.

use serde_json::Value;

use super::pattern::Pattern;

/// Keywords that say nothing about validity.
const ANNOTATIONS: [&str; 14] = [
    "description",
    "example",
    "examples",
    "default",
    "format",
    "title",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$comment",
    "contentMediaType",
    "contentEncoding",
];

/// Checks JSON values against schemas of one document.
#[derive(Debug, Clone, Copy)]
pub struct SchemaValidator<'a> {
    /// The document `$ref`s point into.
    root: &'a Value,
    closed: bool,
}

impl<'a> SchemaValidator<'a> {
    /// A validator resolving `$ref`s in `root` (the whole OpenAPI document).
    pub fn new(root: &'a Value) -> Self {
        Self {
            root,
            closed: false,
        }
    }

    /// Treats properties an object schema does not declare as violations.
    #[must_use]
    pub fn closed(mut self, closed: bool) -> Self {
        self.closed = closed;
        self
    }

    /// Every way `instance` breaks `schema`, each as `<path>: <what>`
    /// (`$` is the instance itself); empty when it conforms.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, instance, "$", &mut errors, 0);
        errors
    }

    fn check(
        &self,
        schema: &Value,
        instance: &Value,
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 {
            errors.push(format!("{path}: schema nests too deep ($ref cycle?)"));
            return;
        }
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{path}: no value is allowed here"));
                return;
            }
            Value::Object(schema) => schema,
            other => {
                errors.push(format!("{path}: the schema is {other}, not an object"));
                return;
            }
        };
        // OpenAPI 3.0's `nullable` widens `type`; a null is then valid
        // whatever the rest says.
        if schema.get("nullable") == Some(&Value::Bool(true)) && instance.is_null() {
            return;
        }
        for (keyword, value) in schema {
            match keyword.as_str() {
                "$ref" => match value.as_str().and_then(|r| self.resolve(r)) {
                    Some(target) => self.check(target, instance, path, errors, depth + 1),
                    None => errors.push(format!("{path}: cannot resolve $ref {value}")),
                },
                "type" => self.check_type(value, instance, path, errors),
                "enum" => match value.as_array() {
                    Some(options) if options.iter().any(|o| same(o, instance)) => {}
                    Some(_) => errors.push(format!("{path}: {instance} is not one of {value}")),
                    None => errors.push(format!("{path}: enum is not a list")),
                },
                "const" => {
                    if !same(value, instance) {
                        errors.push(format!("{path}: {instance} is not {value}"));
                    }
                }
                "properties" | "required" | "additionalProperties" | "propertyNames"
                | "minProperties" | "maxProperties" => {}
                "items" | "minItems" | "maxItems" | "uniqueItems" => {}
                "anyOf" | "oneOf" | "allOf" | "not" => {
                    self.check_combinator(keyword, value, instance, path, errors, depth);
                }
                "nullable" => {}
                "minLength" | "maxLength" | "pattern" => {}
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf" => {}
                other if ANNOTATIONS.contains(&other) => {}
                other => errors.push(format!(
                    "{path}: the validator does not know the keyword {other:?}, so it cannot check this value"
                )),
            }
        }
        match instance {
            Value::Object(_) => self.check_object(schema, instance, path, errors, depth),
            Value::Array(items) => self.check_array(schema, items, path, errors, depth),
            Value::String(text) => check_string(schema, text, path, errors),
            Value::Number(_) => check_number(schema, instance, path, errors),
            Value::Null | Value::Bool(_) => {}
        }
    }

    /// The schema a local `$ref` (`#/…`) points at.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn check_type(&self, expected: &Value, instance: &Value, path: &str, errors: &mut Vec<String>) {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            other => {
                errors.push(format!("{path}: type {other} is not a name or a list"));
                return;
            }
        };
        if !names.iter().any(|name| is_type(name, instance)) {
            errors.push(format!(
                "{path}: expected {}, found {}",
                names.join(" or "),
                kind(instance)
            ));
        }
    }

    fn check_combinator(
        &self,
        keyword: &str,
        value: &Value,
        instance: &Value,
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if keyword == "not" {
            if self.validate_at(value, instance, path, depth).is_empty() {
                errors.push(format!("{path}: {instance} matches a schema it must not"));
            }
            return;
        }
        let Some(branches) = value.as_array() else {
            errors.push(format!("{path}: {keyword} is not a list"));
            return;
        };
        let results: Vec<Vec<String>> = branches
            .iter()
            .map(|branch| self.validate_at(branch, instance, path, depth))
            .collect();
        let passing = results.iter().filter(|r| r.is_empty()).count();
        let explain = || {
            results
                .iter()
                .enumerate()
                .map(|(i, r)| format!("[{i}] {}", r.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match keyword {
            "anyOf" if passing == 0 => errors.push(format!(
                "{path}: {instance} matches none of anyOf: {}",
                explain()
            )),
            "oneOf" if passing != 1 => errors.push(format!(
                "{path}: {instance} matches {passing} of oneOf, not exactly one: {}",
                explain()
            )),
            "allOf" => errors.extend(results.into_iter().flatten()),
            _ => {}
        }
    }

    fn validate_at(
        &self,
        schema: &Value,
        instance: &Value,
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, instance, path, &mut errors, depth + 1);
        errors
    }

    fn check_object(
        &self,
        schema: &serde_json::Map<String, Value>,
        instance: &Value,
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        let Some(object) = instance.as_object() else {
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{path}: {name:?} is required but missing"));
                }
            }
        }
        for (name, value) in object {
            let at = format!("{path}.{name}");
            if let Some(property) = properties.and_then(|p| p.get(name)) {
                self.check(property, value, &at, errors, depth + 1);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    errors.push(format!("{at}: not allowed (additionalProperties is false)"));
                }
                Some(extra @ Value::Object(_)) => self.check(extra, value, &at, errors, depth + 1),
                // Only objects that declare their properties are closed:
                // a free-form map says nothing either way.
                _ if self.closed && properties.is_some() => errors.push(format!(
                    "{at}: not in the document, so Dokploy would drop it without a word"
                )),
                _ => {}
            }
        }
        if let Some(names) = schema.get("propertyNames") {
            for name in object.keys() {
                self.check(
                    names,
                    &Value::String(name.clone()),
                    &format!("{path}.{name} (its name)"),
                    errors,
                    depth + 1,
                );
            }
        }
        let count = object.len() as u64;
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            errors.push(format!("{path}: {count} properties, at least {min} needed"));
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            errors.push(format!("{path}: {count} properties, at most {max} allowed"));
        }
    }

    fn check_array(
        &self,
        schema: &serde_json::Map<String, Value>,
        items: &[Value],
        path: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if let Some(item) = schema.get("items") {
            for (i, value) in items.iter().enumerate() {
                self.check(item, value, &format!("{path}[{i}]"), errors, depth + 1);
            }
        }
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            errors.push(format!("{path}: {count} items, at least {min} needed"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            errors.push(format!("{path}: {count} items, at most {max} allowed"));
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| same(a, b)) {
                    errors.push(format!("{path}[{i}]: repeats an earlier item"));
                }
            }
        }
    }
}

fn check_string(
    schema: &serde_json::Map<String, Value>,
    text: &str,
    path: &str,
    errors: &mut Vec<String>,
) {
    // JavaScript counts UTF-16 units; for the names and ids checked here
    // that is the count of characters.
    let length = text.encode_utf16().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        errors.push(format!("{path}: {text:?} is shorter than {min}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errors.push(format!("{path}: {text:?} is longer than {max}"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Pattern::parse(pattern) {
            Ok(compiled) if compiled.is_match(text) => {}
            Ok(_) => errors.push(format!("{path}: {text:?} does not match {pattern:?}")),
            Err(why) => errors.push(format!(
                "{path}: the validator cannot check the pattern {pattern:?} ({why})"
            )),
        }
    }
}

fn check_number(
    schema: &serde_json::Map<String, Value>,
    instance: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(n) = instance.as_f64() else {
        return;
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && n < min
    {
        errors.push(format!("{path}: {n} is less than {min}"));
    }
    if let Some(max) = bound("maximum")
        && n > max
    {
        errors.push(format!("{path}: {n} is more than {max}"));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && n <= min
    {
        errors.push(format!("{path}: {n} is not more than {min}"));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && n >= max
    {
        errors.push(format!("{path}: {n} is not less than {max}"));
    }
    if let Some(step) = bound("multipleOf")
        && step > 0.0
        && ((n / step).round() * step - n).abs() > 1e-9 * n.abs().max(1.0)
    {
        errors.push(format!("{path}: {n} is not a multiple of {step}"));
    }
}

/// Whether `instance` is of JSON Schema type `name`.
fn is_type(name: &str, instance: &Value) -> bool {
    match name {
        "null" => instance.is_null(),
        "boolean" => instance.is_boolean(),
        "object" => instance.is_object(),
        "array" => instance.is_array(),
        "string" => instance.is_string(),
        "number" => instance.is_number(),
        "integer" => instance.as_f64().is_some_and(|n| n.fract() == 0.0),
        _ => false,
    }
}

fn kind(instance: &Value) -> &'static str {
    match instance {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON equality, numbers by value (`1` and `1.0` are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
