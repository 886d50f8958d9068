//! Reading specs from YAML: bytes -> documents -> schema check -> typed `GpuCluster` -> CEL
//! rules. Every problem becomes a [`Diagnostic`] naming the file, line and column, the field
//! path and the fix; a file with several documents has all of them read.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    diagnostics::{Diagnostic, Location},
    locate::PathIndex,
    schema,
    v1alpha1::{API_VERSION, GpuCluster, NAME_RULE},
};

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File as given.
    pub file: String,
    /// 0-based index of the document in the file (empty documents are not counted).
    pub document: usize,
}

/// A YAML document of a file, as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where it came from.
    pub origin: Origin,
    /// Its content.
    pub value: Value,
}

/// Parses `bytes` of `file` into its documents. Rejects non-UTF-8 bytes, YAML syntax errors
/// (with line and column), empty files and alias bombs (see [`yaml_options`]).
pub fn parse_documents(file: &str, bytes: &[u8]) -> Result<Vec<Document>, Diagnostic> {
    parse(file, bytes, "add a GpuCluster (see examples/)")
}

/// `bytes` as text, or an error naming the first byte that is not UTF-8.
pub(crate) fn utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|error| {
        let offset = error.valid_up_to();
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - bytes[..offset]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        at(
            Diagnostic::error(
                "",
                format!(
                    "the file is not UTF-8 text (invalid byte 0x{:02x})",
                    bytes[offset]
                ),
            )
            .with_fix("save the file as UTF-8"),
            file,
            line,
            column,
        )
    })
}

/// A serde-saphyr error as a finding at its line and column.
pub(crate) fn yaml_error(file: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let diagnostic = yaml_diagnostic(error);
    match error.location() {
        Some(location) if location.line() > 0 => at(
            diagnostic,
            file,
            location.line() as usize,
            (location.column() as usize).max(1),
        ),
        _ => at(diagnostic, file, 1, 1),
    }
}

/// Documents searched for the field of a parse error (a spec file holds a few).
const MAX_DOCUMENTS_SEARCHED: usize = 64;

/// `diagnostic`, a parse error known by position only, with the path of the field there.
fn with_field_path(mut diagnostic: Diagnostic, text: &str) -> Diagnostic {
    let Some(location) = &diagnostic.location else {
        return diagnostic;
    };
    if !diagnostic.path.is_empty() {
        return diagnostic;
    }
    for document in 0..MAX_DOCUMENTS_SEARCHED {
        let index = PathIndex::build_at(text, document, location.line, location.column);
        if !index.has_document() {
            break;
        }
        if let Some(path) = index.path_at(location.line, location.column) {
            diagnostic.path = if document == 0 {
                path.to_owned()
            } else {
                format!("document {}: {path}", document + 1)
            };
            break;
        }
    }
    diagnostic
}

/// [`parse_documents`], with what to say when the file is empty.
fn parse(file: &str, bytes: &[u8], empty_fix: &str) -> Result<Vec<Document>, Diagnostic> {
    let text = utf8(file, bytes)?;
    let values: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options(text.len()))
            .map_err(|error| with_field_path(yaml_error(file, &error), text))?;
    if values.is_empty() {
        return Err(at(
            Diagnostic::error("", "the file holds no YAML documents").with_fix(empty_fix),
            file,
            1,
            1,
        ));
    }
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(document, value)| Document {
            origin: Origin {
                file: file.to_owned(),
                document,
            },
            value,
        })
        .collect())
}

/// Events Kelvin replays from `*alias` references in one file. A spec reuses a few snippets
/// (a selector, a taint) through aliases: hundreds of events. A billion-laughs file needs
/// billions; this stops it after a fraction of a second and a few MB.
const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;

/// serde-saphyr's options for a file of `input_len` bytes. Its default budget caps a stream at
/// 250,000 nodes and 1,000,000 events, which a large inventory exceeds (70,000 nodes with a few
/// labels each are over a million YAML nodes). Written out, a YAML node takes at least a byte,
/// so budgets that grow with the file admit every file that uses no aliases, while expansion
/// through aliases stays bounded by [`MAX_ALIAS_REPLAYED_EVENTS`] whatever the file's size.
pub(crate) fn yaml_options(input_len: usize) -> serde_saphyr::Options {
    let defaults = serde_saphyr::Budget::default();
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: defaults.max_nodes.max(input_len),
            max_events: defaults.max_events.max(input_len.saturating_mul(2)),
            max_total_scalar_bytes: defaults.max_total_scalar_bytes.max(input_len),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
    }
}

/// A YAML error as a finding: what is wrong, without the parser's own location prefix (the
/// diagnostic carries file:line:col), and what to do about it.
fn yaml_diagnostic(error: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::{Error, MessageFormatter, budget::BudgetBreach};

    let mut inner = error;
    while let Error::AliasError { error, .. } | Error::WithSnippet { error, .. } = inner {
        inner = error;
    }
    const BOMB_FIX: &str = "write the repeated values out instead of nesting aliases (*name) in aliases; Kelvin refuses YAML that expands this far (an alias bomb)";
    let (message, fix) = match inner {
        Error::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => (
            format!(
                "YAML aliases expand to more than {max_total_replayed_events} events; reading stopped"
            ),
            BOMB_FIX,
        ),
        Error::AliasExpansionLimitExceeded { .. } | Error::AliasReplayStackDepthExceeded { .. } => {
            (
                format!(
                    "YAML aliases expand too far; reading stopped ({})",
                    DEFAULT_FORMATTER.format_message(inner)
                ),
                BOMB_FIX,
            )
        }
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::AliasAnchorRatio { aliases, anchors } => (
                format!(
                    "YAML uses {aliases} aliases (*name) for {anchors} anchor{} (&name); reading stopped, as alias bombs do this",
                    if *anchors == 1 { "" } else { "s" }
                ),
                "use at most 10 aliases per anchor, or write the repeated values out",
            ),
            BudgetBreach::Nodes { nodes } => (
                format!(
                    "YAML expands to more than {} nodes; reading stopped",
                    nodes.saturating_sub(1)
                ),
                BOMB_FIX,
            ),
            BudgetBreach::Events { events } => (
                format!(
                    "YAML expands to more than {} events; reading stopped",
                    events.saturating_sub(1)
                ),
                BOMB_FIX,
            ),
            BudgetBreach::Depth { depth } => (
                format!("YAML nests {depth} levels deep; reading stopped"),
                "a spec nests a few levels; check the indentation and brackets here",
            ),
            BudgetBreach::Documents { documents } => (
                format!(
                    "the file holds more than {} YAML documents",
                    documents.saturating_sub(1)
                ),
                "split the file",
            ),
            // Sizes (scalar, comment or input bytes): not an alias bomb, a file too big.
            other => (
                format!("YAML exceeds Kelvin's reading limits ({other:?}); reading stopped"),
                "check that this is the file meant: a GpuCluster spec is a few hundred KB at most",
            ),
        },
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("a key");
            return Diagnostic::error("", format!("{key} is given twice in the same mapping"))
                .with_fix(format!("keep one {key}"));
        }
        Error::NonFiniteFloat { value, .. } => {
            return Diagnostic::error(
                "",
                format!("Invalid value: {value}: must be a finite number"),
            )
            .with_fix(
                "use a number such as 1.3 (.nan and .inf are not numbers the API server stores)",
            );
        }
        other => (
            format!(
                "YAML: {}",
                first_line(&DEFAULT_FORMATTER.format_message(other))
            ),
            "fix the YAML syntax at this position",
        ),
    };
    Diagnostic::error("", message).with_fix(fix)
}

const DEFAULT_FORMATTER: serde_saphyr::DefaultMessageFormatter =
    serde_saphyr::DefaultMessageFormatter;

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

fn at(mut diagnostic: Diagnostic, file: &str, line: usize, column: usize) -> Diagnostic {
    diagnostic.location = Some(Location {
        file: file.to_owned(),
        line,
        column,
    });
    diagnostic
}

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

/// What became of one document of a spec file.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It passed the schema and CEL rules.
    Cluster(Box<GpuCluster>, Origin),
    /// It did not (or the file could not be read: then `origin.document` is 0). `name` is its
    /// `metadata.name` when it has one.
    Rejected {
        origin: Origin,
        name: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Reads every document of `bytes`: a GpuCluster, or why not, in file order.
pub fn load_documents(file: &str, bytes: &[u8]) -> Vec<Outcome> {
    let documents = match parse_documents(file, bytes) {
        Ok(documents) => documents,
        Err(diagnostic) => {
            return vec![Outcome::Rejected {
                origin: Origin {
                    file: file.to_owned(),
                    document: 0,
                },
                name: String::new(),
                diagnostics: vec![diagnostic],
            }];
        }
    };
    let mut text = None;
    documents
        .into_iter()
        .map(|document| match check_document(&document.value) {
            Ok(cluster) => Outcome::Cluster(Box::new(cluster), document.origin),
            Err(found) => {
                let text = text.get_or_insert_with(|| String::from_utf8_lossy(bytes));
                let index = PathIndex::build_for(
                    text,
                    document.origin.document,
                    found.iter().map(|d| d.path.as_str()),
                );
                let name = document
                    .value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                Outcome::Rejected {
                    diagnostics: found
                        .into_iter()
                        .map(|d| locate(d, &index, file, &document.origin))
                        .collect(),
                    origin: document.origin,
                    name,
                }
            }
        })
        .collect()
}

/// Reads every GpuCluster in `bytes`. Returns the ones that pass the schema and CEL rules, and
/// every problem found (with locations).
pub fn load_gpu_clusters(file: &str, bytes: &[u8]) -> (Vec<(GpuCluster, Origin)>, Vec<Diagnostic>) {
    let mut clusters = Vec::new();
    let mut diagnostics = Vec::new();
    for outcome in load_documents(file, bytes) {
        match outcome {
            Outcome::Cluster(cluster, origin) => clusters.push((*cluster, origin)),
            Outcome::Rejected {
                diagnostics: found, ..
            } => diagnostics.extend(found),
        }
    }
    (clusters, diagnostics)
}

/// Points `diagnostic` at its field in the file (or at the document when the path is unknown).
pub fn locate(
    mut diagnostic: Diagnostic,
    index: &PathIndex,
    file: &str,
    origin: &Origin,
) -> Diagnostic {
    if diagnostic.location.is_none() {
        // An unknown field is wrong in its key; every other finding is about a value.
        let key = if diagnostic.message.starts_with("unknown field") {
            index.find_key(&diagnostic.path)
        } else {
            None
        };
        let (line, column) = key
            .or_else(|| index.find(&diagnostic.path))
            .or_else(|| index.find(""))
            .unwrap_or((1, 1));
        diagnostic.location = Some(Location {
            file: file.to_owned(),
            line,
            column,
        });
    }
    if diagnostic.path.is_empty() && origin.document > 0 {
        diagnostic.path = format!("document {}", origin.document + 1);
    }
    diagnostic
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

/// Reads a node inventory (moved to [`crate::inventory`], kept here for callers).
pub use crate::inventory::load_inventory;

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
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((value, what)) = rest.split_once(", expected ")
    {
        return format!(
            "Invalid value: {}: must be {}",
            shown(value),
            expected(what)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_files_without_aliases_are_read() {
        // More YAML nodes than serde-saphyr's default budget (250,000), as a large inventory has.
        let text = format!("items: [{}]\n", vec!["1"; 260_000].join(","));
        let documents = parse_documents("big.yaml", text.as_bytes()).unwrap();
        assert_eq!(
            documents[0].value["items"].as_array().map(Vec::len),
            Some(260_000)
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (anchor, alias) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            text.push_str(&format!(
                "{anchor}: &{anchor} [{}]\n",
                vec![format!("*{alias}"); 9].join(", ")
            ));
        }
        let error = parse_documents("bomb.yaml", text.as_bytes()).unwrap_err();
        assert!(
            error
                .message
                .starts_with("YAML aliases expand to more than"),
            "{error}"
        );
        assert!(
            error
                .fix
                .as_deref()
                .is_some_and(|fix| fix.contains("alias bomb")),
            "{error}"
        );
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "sel: &sel {matchLabels: {sku: a}}\none: *sel\ntwo: *sel\n";
        let documents = parse_documents("aliases.yaml", text.as_bytes()).unwrap();
        assert_eq!(documents[0].value["two"]["matchLabels"]["sku"], "a");
    }
}
