//! docs/operator.md's RBAC table is `kelvin_core::ownership::access_rules()`, row for row: the
//! test fails on drift; `UPDATE_GOLDEN=1` rewrites the table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure is the report

use kelvin_core::ownership::access_rules;

const BEGIN: &str = "<!-- access-rules:begin";
const END: &str = "<!-- access-rules:end -->";

fn table() -> String {
    let mut rows = vec![
        "| API group | Resource | Verbs | Why |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for rule in access_rules() {
        let group = if rule.group.is_empty() {
            "\"\" (core)"
        } else {
            rule.group
        };
        rows.push(format!(
            "| `{group}` | `{}` | {} | {} |",
            rule.resource,
            rule.verbs.join(", "),
            rule.why
        ));
    }
    rows.join("\n") + "\n"
}

#[test]
fn the_rbac_table_in_the_docs_is_the_access_rules() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let begin = doc
        .find(BEGIN)
        .expect("docs/operator.md has the access-rules markers");
    let body_start = begin + doc[begin..].find('\n').unwrap() + 1;
    let end = doc
        .find(END)
        .expect("docs/operator.md has the access-rules end marker");
    let wanted = table();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{wanted}{}", &doc[..body_start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[body_start..end],
        wanted,
        "docs/operator.md's RBAC table differs from access_rules(): \
         UPDATE_GOLDEN=1 cargo test -p kelvin-operator --test rbac_docs"
    );
}
