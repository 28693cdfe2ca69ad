//! Every response the suite receives from `/api/v1` is checked against the OpenAPI document
//! the server publishes: the route and method are documented, the status is one the operation
//! lists, and a JSON body fits the schema. So the document is proven by the whole end-to-end
//! suite, and a handler that changes its output without the document fails a test.

use serde_json::Value;
use std::sync::OnceLock;

/// Nesting the checker follows before it gives up (the document has no recursive schemas).
const DEPTH_MAX: usize = 16;

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(include_str!("../../src/openapi.json")).expect("openapi.json is JSON")
    })
}

/// Checks one exchange; `request_line` is `METHOD /path?query HTTP/1.1`.
pub fn check(request_line: &str, status: u16, content_type: Option<&str>, body: &str) {
    let mut words = request_line.split(' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let path = target.split('?').next().unwrap_or(target);
    if !path.starts_with("/api/v1") {
        return;
    }
    let Some((template, item)) = path_item(path) else {
        assert_eq!(status, 404, "{method} {path}: not in openapi.json");
        return;
    };
    let Some(operation) = item.get(method.to_ascii_lowercase()) else {
        assert_eq!(status, 405, "{method} {template}: not in openapi.json");
        return;
    };
    let responses = &operation["responses"];
    let Some(response) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        panic!("{method} {template}: status {status} is not documented; body {body}");
    };
    let is_json = content_type.is_some_and(|t| t.contains("json"));
    if !is_json || body.is_empty() {
        return;
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {template} {status}: a JSON body, but no JSON schema documented"
    );
    let value: Value = serde_json::from_str(body).expect("a JSON body");
    if let Err(problem) = fits(&value, schema, 0) {
        panic!("{method} {template} {status}: {problem}; body {body}");
    }
}

/// The documented path whose template matches `path`, `{name}` standing for one segment.
fn path_item(path: &str) -> Option<(&'static str, &'static Value)> {
    let paths = document()["paths"].as_object().expect("paths");
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, segment)| {
                part == segment || (part.starts_with('{') && !segment.is_empty())
            });
        matches.then_some((template.as_str(), item))
    })
}

fn resolve(schema: &Value) -> &Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .expect("local schema references only");
            &document()["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Whether `value` fits `schema`: types, properties, required keys, no undocumented keys
/// where `additionalProperties` is false, array items, enums, and `oneOf`/`anyOf`.
fn fits(value: &Value, schema: &Value, depth: usize) -> Result<(), String> {
    assert!(depth < DEPTH_MAX, "schema nesting too deep");
    let schema = resolve(schema);
    for combinator in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[combinator].as_array() {
            return match choices.iter().any(|c| fits(value, c, depth + 1).is_ok()) {
                true => Ok(()),
                false => Err(format!("{value} fits none of {combinator}")),
            };
        }
    }
    if !type_allows(&schema["type"], value) {
        return Err(format!("{value} is not of type {}", schema["type"]));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{value} is not one of {}", schema["enum"]));
    }
    match value {
        Value::Object(object) => fits_object(object, schema, depth),
        Value::Array(items) if !schema["items"].is_null() => items
            .iter()
            .try_for_each(|item| fits(item, &schema["items"], depth + 1)),
        _ => Ok(()),
    }
}

fn fits_object(
    object: &serde_json::Map<String, Value>,
    schema: &Value,
    depth: usize,
) -> Result<(), String> {
    let properties = schema["properties"].as_object();
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            return Err(format!("required property {name:?} missing"));
        }
    }
    for (name, value) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => {
                fits(value, property, depth + 1).map_err(|e| format!("{name}: {e}"))?
            }
            None if schema["additionalProperties"] == Value::Bool(false) => {
                return Err(format!("property {name:?} is not documented"));
            }
            None => {}
        }
    }
    Ok(())
}

fn type_allows(declared: &Value, value: &Value) -> bool {
    let one = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    match declared {
        Value::Null => true,
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(one),
        _ => false,
    }
}
