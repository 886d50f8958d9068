//! Decoding one document as the API server would: kind, apiVersion and metadata, the CRD's
//! structural schema, the typed `GpuCluster`, then its CEL rules on the defaulted object; and
//! serde's messages in Kubernetes' words.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    diagnostics::Diagnostic,
    schema,
    v1alpha1::{API_VERSION, GpuCluster, NAME_RULE},
};

/// The CRD's schema and its CEL rules compiled, made once per process: generating the CRD
/// takes ~7 ms and compiling its rules ~1 ms, ten times what checking a spec costs.
struct Checks {
    schema: Value,
    rules: kube::core::cel::CompiledSchema,
    validator: kube::core::cel::Validator,
}

fn checks() -> &'static Checks {
    static CHECKS: std::sync::OnceLock<Checks> = std::sync::OnceLock::new();
    CHECKS.get_or_init(|| {
        let schema = schema_of(&crate::crd::polished(GpuCluster::crd()));
        Checks {
            rules: kube::core::cel::compile_schema(&schema),
            schema,
            validator: kube::core::cel::Validator::new(),
        }
    })
}

/// The `openAPIV3Schema` of the GpuCluster CRD, as JSON.
pub fn gpu_cluster_schema() -> &'static Value {
    &checks().schema
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Checks one document the way the API server would: kind and apiVersion, the structural
/// schema, then CEL rules on the defaulted object.
pub fn check_document(value: &Value) -> Result<GpuCluster, Vec<Diagnostic>> {
    let checks = checks();
    let schema = &checks.schema;
    let Some(object) = value.as_object() else {
        return Err(vec![Diagnostic::error(
            "",
            "expected a mapping with apiVersion, kind, metadata and spec",
        )]);
    };
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut errors = Vec::new();
    if kind.is_empty() {
        errors.push(
            Diagnostic::error("kind", "Required value")
                .with_fix("add kind: GpuCluster (with apiVersion: kelvin.dev/v1alpha1)"),
        );
    } else if kind != "GpuCluster" {
        let mut error = Diagnostic::error(
            "kind",
            format!("kind {kind:?} is not one Kelvin reads here"),
        );
        error = if kind.eq_ignore_ascii_case("gpucluster")
            || schema::closest(kind, ["GpuCluster"].into_iter()).is_some()
        {
            error.with_fix("did you mean \"GpuCluster\"?")
        } else {
            error.with_fix("use kind: GpuCluster (with apiVersion: kelvin.dev/v1alpha1)")
        };
        errors.push(error);
    }
    if api_version.is_empty() {
        errors.push(
            Diagnostic::error("apiVersion", "Required value")
                .with_fix(format!("add apiVersion: {API_VERSION}")),
        );
    } else if api_version != API_VERSION {
        errors.push(
            Diagnostic::error(
                "apiVersion",
                format!("apiVersion {api_version:?} is not served by Kelvin"),
            )
            .with_fix(format!("use apiVersion: {API_VERSION}")),
        );
    }
    let name = value.pointer("/metadata/name");
    match name.map(|name| name.as_str().ok_or(name)) {
        Some(Err(other)) => errors.push(
            Diagnostic::error(
                "metadata.name",
                format!("Invalid value: {other}: must be of type string"),
            )
            .with_fix(if other.is_number() || other.is_boolean() {
                format!("quote it: name: \"{other}\"")
            } else {
                "give the site a name, e.g. metadata: {name: cortex}".to_owned()
            }),
        ),
        None => errors.push(Diagnostic::error("metadata.name", "Required value").with_fix("name the site, e.g. metadata: {name: cortex}")),
        Some(Ok(name)) if !crate::names::is_dns_subdomain(name) => errors.push(
            Diagnostic::error("metadata.name", format!("{name:?} is not a valid name"))
                .with_fix("use lowercase alphanumerics, '-' and '.', at most 63 characters, starting and ending alphanumeric"),
        ),
        Some(Ok(_)) => {}
    }
    errors.extend(metadata_map_errors(value, "labels"));
    errors.extend(metadata_map_errors(value, "annotations"));
    if !errors.is_empty() {
        return Err(errors);
    }
    // apiVersion, kind and metadata were checked above; the CRD schema leaves them out.
    let mut body = object.clone();
    for key in ["apiVersion", "kind", "metadata"] {
        body.remove(key);
    }
    let mut errors = schema::validate(schema, &Value::Object(body));
    if !errors.is_empty() {
        return Err(errors);
    }
    // The API server stores `expectedNodes: 200.0` as the integer 200 (the schema's type
    // decides); so does Kelvin, rather than refusing what kubectl apply accepts.
    let mut value = value.clone();
    integral_floats_as_integers(&mut value);
    let cluster: GpuCluster = match serde_json::from_value(value) {
        Ok(cluster) => cluster,
        Err(error) => {
            return Err(vec![Diagnostic::error(
                "spec",
                serde_message(&error.to_string()),
            )]);
        }
    };
    // CEL runs on the object as the API server stores it: with defaults applied.
    let defaulted = match serde_json::to_value(&cluster) {
        Ok(value) => value,
        Err(error) => return Err(vec![Diagnostic::error("spec", error.to_string())]),
    };
    if let Err(failures) = checks
        .validator
        .validate_compiled(&checks.rules, &defaulted, None)
    {
        errors.extend(failures.iter().map(|failure| {
            // A root rule fails at no field; the name rule is about metadata.name.
            let path = if failure.field_path.is_empty() && failure.rule == NAME_RULE.rule {
                "metadata.name".to_owned()
            } else {
                failure.field_path.clone()
            };
            Diagnostic::error(path, failure.message.clone())
        }));
        return Err(errors);
    }
    Ok(cluster)
}

/// Longest GpuCluster name: a label value's limit (it is the value of `kelvin.dev/cluster`).
/// The CRD's root rule (`v1alpha1::NAME_RULE`) checks it, on the API server and here alike.
pub const MAX_CLUSTER_NAME: usize = 63;

/// What the API server would refuse in `metadata.labels` or `metadata.annotations`: keys that
/// are not qualified names, values that are not strings, label values that are not label values.
fn metadata_map_errors(value: &Value, field: &str) -> Vec<Diagnostic> {
    let Some(map) = value.pointer(&format!("/metadata/{field}")) else {
        return Vec::new();
    };
    let Some(map) = map.as_object() else {
        return vec![
            Diagnostic::error(
                format!("metadata.{field}"),
                format!("Invalid value: {map}: must be a mapping of strings to strings"),
            )
            .with_fix(format!("write {field}: {{key: value}}")),
        ];
    };
    let mut errors = Vec::new();
    for (key, entry) in map {
        let at = format!("metadata.{field}.{key}");
        if !crate::names::is_label_key(key) {
            errors.push(
                Diagnostic::error(&at, format!("{key:?} is not a valid {} key", &field[..field.len() - 1]))
                    .with_fix("use [prefix/]name: name up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric; prefix a DNS subdomain"),
            );
        }
        match entry.as_str() {
            None => errors.push(
                Diagnostic::error(
                    &at,
                    format!("Invalid value: {entry}: must be of type string"),
                )
                .with_fix(format!(
                    "quote it: {key}: \"{}\"",
                    entry.to_string().trim_matches('"')
                )),
            ),
            Some(text) if field == "labels" && !crate::names::is_label_value(text) => errors.push(
                Diagnostic::error(&at, format!("{text:?} is not a valid label value")).with_fix(
                    "use up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
                ),
            ),
            Some(_) => {}
        }
    }
    errors
}

/// Every whole number written as a float (`200.0`) as an integer; the schema check has
/// already refused floats where integers belong, and a float field takes an integer.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float.abs() < 9.0e15
            {
                // Exact below 2^53.
                *value = Value::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// A serde error message in the words the API server uses: `invalid type: integer `5`,
/// expected a string at line 3 column 9` becomes `Invalid value: 5: must be of type string`.
/// Rust's type names (`u32`, `struct NodeInfo`) become what a YAML author writes.
pub(crate) fn serde_message(message: &str) -> String {
    // serde_json appends the position; the diagnostic carries it.
    let message = match message.rfind(" at line ") {
        Some(cut)
            if message[cut + " at line ".len()..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            &message[..cut]
        }
        _ => message,
    };
    let expected = |what: &str| -> String {
        let what = what.trim();
        match what {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of at least 0".to_owned(),
            "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
            "f32" | "f64" => "a number".to_owned(),
            "a boolean" | "a bool" => "of type boolean".to_owned(),
            "a string" | "a borrowed string" | "a string key" => "of type string".to_owned(),
            "a sequence" => "a list".to_owned(),
            "a map" => "a mapping".to_owned(),
            other if other.starts_with("struct ") || other.starts_with("a mapping") => {
                "a mapping".to_owned()
            }
            other => other.replace('`', "\""),
        }
    };
    let shown = |value: &str| -> String {
        let value = value.trim();
        let unquoted = |v: &str| v.trim_matches('`').to_owned();
        for prefix in [
            "integer ",
            "floating point ",
            "string ",
            "boolean ",
            "unsigned integer ",
        ] {
            if let Some(rest) = value.strip_prefix(prefix) {
                return if prefix == "string " {
                    format!("\"{}\"", rest.trim_matches(['`', '"']))
                } else {
                    unquoted(rest)
                };
            }
        }
        match value {
            "sequence" => "a list".to_owned(),
            "map" => "a mapping".to_owned(),
            "unit value" | "null" => "null".to_owned(),
            other => unquoted(other),
        }
    };
    // serde says "invalid type" or "invalid value"; Kubernetes says "Invalid value" for both.
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        && let Some((value, what)) = rest.split_once(", expected ")
    {
        return format!(
            "Invalid value: {}: must be {}",
            shown(value),
            expected(what)
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("Required value: {}", field.trim_matches('`'));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = rest.split(',').next().unwrap_or(rest).trim_matches('`');
        return format!("unknown field \"{field}\"");
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return format!(
            "{} is given twice in the same mapping",
            rest.trim_matches('`')
        );
    }
    message.to_owned()
}
