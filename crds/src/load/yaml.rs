//! Reading a file's YAML: UTF-8, syntax, the reading limits that stop alias bombs, and parser
//! errors as findings at their line, column and field.

use serde_json::Value;

use super::{Document, Origin};
use crate::{diagnostics::Diagnostic, locate::PathIndex};

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
        Diagnostic::error(
            "",
            format!(
                "the file is not UTF-8 text (invalid byte 0x{:02x})",
                bytes[offset]
            ),
        )
        .with_fix("save the file as UTF-8")
        .at(file, line, column)
    })
}

/// A serde-saphyr error as a finding at its line and column.
pub(crate) fn yaml_error(file: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let diagnostic = yaml_diagnostic(error);
    match error.location() {
        Some(location) if location.line() > 0 => diagnostic.at(
            file,
            location.line() as usize,
            (location.column() as usize).max(1),
        ),
        _ => diagnostic.at(file, 1, 1),
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
        return Err(Diagnostic::error("", "the file holds no YAML documents")
            .with_fix(empty_fix)
            .at(file, 1, 1));
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
