//! Field-level differences between an object as it is and as a server-side dry-run says it
//! would be: only what changes, Terraform-style (`spec.hard["nvidia.com/gpu"] 48000 -> 60000`).
//! Pure: values in, lines out.

use std::fmt::Write as _;

use serde_json::Value;

/// Metadata the API server changes on every write, never a change anyone made.
const VOLATILE_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// Longest value shown inline before it is cut.
const INLINE: usize = 80;
/// Changed lines of a text value shown before the rest are counted.
const TEXT_LINES: usize = 8;

/// `object` without its status and the metadata the server maintains: what a person or Kelvin
/// wrote.
pub fn written(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in VOLATILE_METADATA {
                metadata.remove(key);
            }
        }
    }
    object
}

/// One line per changed field, in path order: `path before -> after`, with `(none)` for a
/// field added or removed; a multi-line text value (a config file in a ConfigMap) shows its
/// changed lines under the path.
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    walk(
        &written(before),
        &written(after),
        &mut String::new(),
        &mut lines,
    );
    lines
}

fn segment(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{key:?}]"),
    }
}

/// The `name` of every item, when every item of both lists has a distinct one (containers,
/// env, tolerations by key…): such lists are compared item by item by name.
fn names(items: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = items
        .iter()
        .map(|item| item.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == names.len()).then_some(names)
}

fn walk(before: &Value, after: &Value, path: &mut String, lines: &mut Vec<String>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let mut inner = segment(path, key);
                walk(
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    &mut inner,
                    lines,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => match (names(b), names(a)) {
            (Some(bn), Some(an)) => {
                let mut all: Vec<&str> = bn.iter().chain(an.iter()).copied().collect();
                all.sort_unstable();
                all.dedup();
                for name in all {
                    let find = |items: &[Value], names: &[&str]| {
                        names
                            .iter()
                            .position(|n| *n == name)
                            .map_or(Value::Null, |i| items[i].clone())
                    };
                    let mut inner = format!("{path}[name={name}]");
                    walk(&find(b, &bn), &find(a, &an), &mut inner, lines);
                }
            }
            _ if b.len() == a.len() => {
                for (index, (b, a)) in b.iter().zip(a).enumerate() {
                    let mut inner = format!("{path}[{index}]");
                    walk(b, a, &mut inner, lines);
                }
            }
            _ => lines.push(format!("{path} {} -> {}", show(before), show(after))),
        },
        (Value::String(b), Value::String(a)) if b.contains('\n') || a.contains('\n') => {
            lines.push(text_change(path, b, a));
        }
        _ => lines.push(format!("{path} {} -> {}", show(before), show(after))),
    }
}

/// A value on one line: strings without quotes unless empty or odd, `(none)` for absent.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Null => return "(none)".to_owned(),
        Value::String(s) if !s.is_empty() && !s.contains([' ', '\n', '"']) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > INLINE {
        let cut: String = text.chars().take(INLINE).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A multi-line text value: its changed lines as `-`/`+`, from a longest-common-subsequence
/// line diff (config files are short; a long one is only counted).
fn text_change(path: &str, before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut out = format!("{path} (text):");
    if b.len() * a.len() > 1_000_000 {
        let _ = write!(out, " {} lines -> {} lines", b.len(), a.len());
        return out;
    }
    // lcs[i][j]: common lines of b[i..] and a[j..].
    let mut lcs = vec![vec![0u32; a.len() + 1]; b.len() + 1];
    for i in (0..b.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if b[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut shown, mut more) = (0, 0, 0, 0);
    let mut emit = |line: String, out: &mut String| {
        if shown < TEXT_LINES {
            let _ = write!(out, "\n      {line}");
            shown += 1;
        } else {
            more += 1;
        }
    };
    while i < b.len() || j < a.len() {
        if i < b.len() && j < a.len() && b[i] == a[j] {
            i += 1;
            j += 1;
        } else if i < b.len() && (j == a.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            emit(format!("- {}", b[i]), &mut out);
            i += 1;
        } else {
            emit(format!("+ {}", a[j]), &mut out);
            j += 1;
        }
    }
    if more > 0 {
        let _ = write!(out, "\n      … and {more} more changed lines");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_changed_fields_are_listed_with_kubernetes_paths() {
        let before = json!({
            "metadata": {"name": "q", "resourceVersion": "1", "labels": {"a": "1"}},
            "spec": {"hard": {"nvidia.com/gpu": "48000"}},
            "status": {"used": {"nvidia.com/gpu": "7"}}
        });
        let after = json!({
            "metadata": {"name": "q", "resourceVersion": "2", "labels": {"a": "1", "b": "2"}},
            "spec": {"hard": {"nvidia.com/gpu": "60000"}},
            "status": {"used": {"nvidia.com/gpu": "8"}}
        });
        assert_eq!(
            changed_fields(&before, &after),
            vec![
                "metadata.labels.b (none) -> 2".to_owned(),
                "spec.hard[\"nvidia.com/gpu\"] 48000 -> 60000".to_owned(),
            ]
        );
        assert!(changed_fields(&before, &before).is_empty());
    }

    #[test]
    fn named_lists_are_compared_by_name_and_text_by_line() {
        let before = json!({"spec": {"containers": [
            {"name": "plugin", "image": "a:1"}, {"name": "side", "image": "s:1"}]},
            "data": {"config.yaml": "version: v1\nsharing:\n  replicas: 2\n"}});
        let after = json!({"spec": {"containers": [
            {"name": "side", "image": "s:1"}, {"name": "plugin", "image": "a:2"}]},
            "data": {"config.yaml": "version: v1\nsharing:\n  replicas: 4\n"}});
        assert_eq!(
            changed_fields(&before, &after),
            vec![
                "data[\"config.yaml\"] (text):\n      -   replicas: 2\n      +   replicas: 4"
                    .to_owned(),
                "spec.containers[name=plugin].image a:1 -> a:2".to_owned(),
            ]
        );
    }
}
