//! Structural-schema validation of a document against the CRD's OpenAPI schema, offline.
//!
//! The API server checks types, required fields, enums, ranges, lengths, patterns, list
//! uniqueness and (with kubectl's strict field validation) unknown fields before any CEL rule
//! runs. This module checks the same keywords, so `kelvin validate` rejects what the API
//! server would, and additionally suggests the field a misspelt one was meant to be.

use std::{cell::RefCell, collections::HashMap};

use regex::Regex;
use serde_json::{Map, Value};

use crate::diagnostics::Diagnostic;

/// Validates `value` against `schema` (an `openAPIV3Schema`), returning one error per problem.
pub fn validate(schema: &Value, value: &Value) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<Diagnostic>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            errors.push(Diagnostic::error(
                path,
                "Invalid value: null: must not be null",
            ));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        match value {
            Value::String(text) => check_string(schema, text, path, errors),
            _ if value.as_i64().is_some() => {}
            _ => errors.push(Diagnostic::error(
                path,
                format!("Invalid value: {value}: must be an integer or a string"),
            )),
        }
        return;
    }
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && !schema.contains_key("type")
    {
        return;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    if !type_matches(expected, value) {
        errors.push(type_error(schema, expected, value, path));
        return;
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::Object(object) => check_object(schema, object, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => {
            value.is_i64()
                || value.is_u64()
                || value
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
        }
        "number" => value.is_number(),
        _ => true,
    }
}

/// The error for a value of the wrong type. A whole number too large for 64 bits reaches here as
/// a float (`99999999999999999999999` reads as `1e+23`): say that it overflows, and the range.
fn type_error(
    schema: &Map<String, Value>,
    expected: &str,
    value: &Value,
    path: &str,
) -> Diagnostic {
    let range = match (
        schema.get("minimum").and_then(Value::as_f64),
        schema.get("maximum").and_then(Value::as_f64),
    ) {
        (Some(min), Some(max)) => format!("a whole number from {} to {}", trim(min), trim(max)),
        (Some(min), None) => format!("a whole number of at least {}", trim(min)),
        (None, Some(max)) => format!("a whole number of at most {}", trim(max)),
        (None, None) => "a whole number".to_owned(),
    };
    match value.as_f64() {
        Some(number) if expected == "integer" && number.fract() == 0.0 => Diagnostic::error(
            path,
            format!("Invalid value: {value}: the number overflows a 64-bit integer"),
        )
        .with_fix(format!("use {range}")),
        Some(_) if expected == "integer" => Diagnostic::error(
            path,
            format!("Invalid value: {value}: must be of type integer"),
        )
        .with_fix(format!("use {range}")),
        _ => Diagnostic::error(
            path,
            format!(
                "Invalid value: {}: must be of type {expected}",
                describe(value)
            ),
        ),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "object".into(),
        Value::Array(_) => "array".into(),
        Value::String(s) => format!("{s:?} (string)"),
        Value::Bool(b) => format!("{b} (boolean)"),
        Value::Number(n) => format!("{n} (number)"),
        Value::Null => "null".into(),
    }
}

fn check_enum(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let supported: Vec<String> = allowed.iter().map(Value::to_string).collect();
    let mut error = Diagnostic::error(
        path,
        format!(
            "Unsupported value: {value}: supported values: {}",
            supported.join(", ")
        ),
    );
    if let (Some(given), Some(best)) = (
        value.as_str(),
        closest(
            value.as_str().unwrap_or(""),
            allowed.iter().filter_map(Value::as_str),
        ),
    ) && !given.is_empty()
    {
        error = error.with_fix(format!("did you mean \"{best}\"?"));
    }
    errors.push(error);
}

fn check_object(
    schema: &Map<String, Value>,
    object: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && object.len() as u64 > max
    {
        errors.push(Diagnostic::error(
            path,
            format!("Too many: {}: must have at most {max} items", object.len()),
        ));
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                errors.push(Diagnostic::error(join(path, key), "Required value"));
            }
        }
    }
    let additional = schema.get("additionalProperties");
    for (key, child) in object {
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check(child_schema, child, &child_path, errors);
        } else if let Some(additional) = additional {
            if additional.is_object() {
                check(additional, child, &child_path, errors);
            }
        } else if let Some(properties) = properties {
            // Top-level apiVersion/kind/metadata are checked by the loader.
            let mut error = Diagnostic::error(&child_path, format!("unknown field \"{key}\""));
            match closest(key, properties.keys().map(String::as_str)) {
                Some(best) => error = error.with_fix(format!("did you mean \"{best}\"?")),
                None => {
                    let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    error = error.with_fix(format!("known fields here: {}", known.join(", ")));
                }
            }
            errors.push(error);
        }
    }
}

fn check_array(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
    errors: &mut Vec<Diagnostic>,
) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        // The API server stops here too: checking each of a million items would only
        // repeat this error in a million ways, and cost time and memory.
        errors.push(
            Diagnostic::error(
                path,
                format!("Too many: {}: must have at most {max} items", items.len()),
            )
            .with_fix(format!("list at most {max} items here")),
        );
        return;
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(Diagnostic::error(
            path,
            format!(
                "Invalid value: {} items: should have at least {min} items",
                items.len()
            ),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{index}]"), errors);
        }
    }
    check_list_uniqueness(schema, items, path, errors);
}

fn check_list_uniqueness(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        Some("set") => Vec::new(),
        _ => return,
    };
    // Identity (as compact JSON) -> index of its first item: one pass, not item x item.
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let identity = if keys.is_empty() {
            item.clone()
        } else {
            Value::Object(
                keys.iter()
                    .map(|k| {
                        (
                            (*k).to_owned(),
                            item.get(*k).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect(),
            )
        };
        let text = identity.to_string();
        match seen.get(&text) {
            Some(first) => errors.push(
                Diagnostic::error(
                    format!("{path}[{index}]"),
                    format!("Duplicate value: {text}"),
                )
                .with_fix(format!(
                    "{path}[{first}] has the same {}; names must be unique",
                    if keys.is_empty() {
                        "value".to_owned()
                    } else {
                        keys.join(", ")
                    }
                )),
            ),
            None => {
                seen.insert(text, index);
            }
        }
    }
}

fn check_string(schema: &Map<String, Value>, text: &str, path: &str, errors: &mut Vec<Diagnostic>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errors.push(Diagnostic::error(
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        errors.push(Diagnostic::error(
            path,
            format!("Invalid value: {text:?}: should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // A pattern that does not compile is our bug, not the user's; the API server would
        // have refused the CRD, and the drift test installs it.
        if let Some(false) = matches_pattern(pattern, text) {
            errors.push(Diagnostic::error(
                path,
                format!("Invalid value: {text:?}: should match '{pattern}'"),
            ));
        }
    }
}

thread_local! {
    /// Compiled patterns: a list of a thousand names is checked against one pattern.
    static PATTERNS: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// Whether `text` matches `pattern`; None when the pattern does not compile.
fn matches_pattern(pattern: &str, text: &str) -> Option<bool> {
    PATTERNS.with(|patterns| {
        let mut patterns = patterns.borrow_mut();
        let regex = patterns
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).ok());
        regex.as_ref().map(|regex| regex.is_match(text))
    })
}

fn check_number(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(number) = value.as_f64() else { return };
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        errors.push(
            Diagnostic::error(
                path,
                format!(
                    "Invalid value: {value}: should be less than or equal to {}",
                    trim(max)
                ),
            )
            .with_fix(format!("use at most {}", trim(max))),
        );
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        errors.push(
            Diagnostic::error(
                path,
                format!(
                    "Invalid value: {value}: should be greater than or equal to {}",
                    trim(min)
                ),
            )
            .with_fix(format!("use at least {}", trim(min))),
        );
    }
}

fn trim(number: f64) -> String {
    if number.fract() == 0.0 {
        format!("{number:.0}")
    } else {
        number.to_string()
    }
}

/// The candidate closest to `given`, when one is close enough to be a likely typo.
pub fn closest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    candidates
        .map(|candidate| {
            (
                strsim::jaro_winkler(&given_lower, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "count": {"type": "integer", "minimum": 1, "maximum": 10},
                "kind": {"type": "string", "enum": ["Liquid", "Air"]},
                "items": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }
        })
    }

    fn messages(value: Value) -> Vec<String> {
        validate(&schema(), &value)
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn accepts_a_valid_object() {
        assert!(messages(json!({"name": "ab", "count": 3, "kind": "Air"})).is_empty());
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let found = messages(
            json!({"count": 11, "kind": "Water", "items": [{"name": "a"}, {"name": "a"}, {"name": "b"}]}),
        );
        assert_eq!(
            found,
            vec![
                "name: Required value",
                "count: Invalid value: 11: should be less than or equal to 10",
                "items: Too many: 3: must have at most 2 items",
                "kind: Unsupported value: \"Water\": supported values: \"Liquid\", \"Air\"",
            ]
        );
    }

    #[test]
    fn a_list_over_max_items_is_not_checked_item_by_item() {
        // 100,000 items, every one invalid and a duplicate: one error, not 200,000.
        let items = vec![json!({"name": 1}); 100_000];
        let found = messages(json!({"name": "ab", "items": items}));
        assert_eq!(
            found,
            ["items: Too many: 100000: must have at most 2 items"]
        );
    }

    #[test]
    fn duplicates_name_the_first_item_with_the_same_key() {
        let schema = json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}});
        let mut items: Vec<Value> = (0..50_000)
            .map(|n| json!({"name": format!("p{n}")}))
            .collect();
        items.push(json!({"name": "p7", "n": 1}));
        let found = validate(&schema, &Value::Array(items));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "[50000]");
        assert_eq!(found[0].message, "Duplicate value: {\"name\":\"p7\"}");
        assert_eq!(
            found[0].fix.as_deref(),
            Some("[7] has the same name; names must be unique")
        );
    }

    #[test]
    fn bounds_int_or_string_lengths_and_map_sizes() {
        let schema = json!({"type": "object", "properties": {
            "budget": {"x-kubernetes-int-or-string": true, "maxLength": 4},
            "quota": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}}
        }});
        let found: Vec<String> = validate(
            &schema,
            &json!({"budget": "100.0%", "quota": {"a": 1, "b": 2}}),
        )
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
        assert_eq!(
            found,
            [
                "budget: Too long: may not be more than 4 bytes",
                "quota: Too many: 2: must have at most 1 items"
            ]
        );
        assert!(validate(&schema, &json!({"budget": 5})).is_empty());
    }

    #[test]
    fn suggests_the_field_a_misspelt_one_was_meant_to_be() {
        let found = validate(&schema(), &json!({"name": "ab", "cuont": 1}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "cuont");
        assert_eq!(found[0].fix.as_deref(), Some("did you mean \"count\"?"));
    }

    #[test]
    fn says_when_a_whole_number_overflows() {
        let found = validate(&schema(), &json!({"name": "ab", "count": 1e23}));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].message,
            "Invalid value: 1e+23: the number overflows a 64-bit integer"
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("use a whole number from 1 to 10")
        );
    }

    #[test]
    fn checks_types_lengths_and_patterns() {
        let found = messages(json!({"name": "ABCDEFG", "count": "3"}));
        assert_eq!(
            found,
            vec![
                "count: Invalid value: \"3\" (string): must be of type integer",
                "name: Too long: may not be more than 5 bytes",
                "name: Invalid value: \"ABCDEFG\": should match '^[a-z]+$'",
            ]
        );
    }
}
