//! Golden snapshots of what a person reads: `kelvin plan` text and `kelvin render` YAML of the
//! small example. `UPDATE_GOLDEN=1 cargo test -p kelvin --test plan_output` rewrites them.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the report

use std::{path::PathBuf, process::Command};

fn kelvin(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kelvin"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs; review and run UPDATE_GOLDEN=1 cargo test -p kelvin --test plan_output\n--- actual ---\n{actual}",
        path.display()
    );
}

#[test]
fn plan_text_of_the_small_lab() {
    let (code, out) = kelvin(&[
        "plan",
        "--offline",
        "--detailed-exitcode",
        "-f",
        "../examples/small/cluster.yaml",
    ]);
    assert_eq!(code, Some(2), "changes are pending: {out}");
    check("small-plan.txt", &out);
}

#[test]
fn render_of_the_small_lab_is_the_planned_objects() {
    let (code, out) = kelvin(&["render", "-f", "../examples/small/cluster.yaml"]);
    assert_eq!(code, Some(0));
    // The same objects the planning core's golden file pins, in the same order.
    let core = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../operator/core/tests/golden/small/objects.yaml"
    ))
    .unwrap();
    assert_eq!(out, core);
}

#[test]
fn plan_of_cortex_is_clean_and_counts_nodes_per_pool() {
    let (code, out) = kelvin(&["plan", "--offline", "-f", "../examples/cortex/cluster.yaml"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Plan: 30 to add, 8,750 to change, 0 to destroy."),
        "{out}"
    );
    assert!(out.contains("~ h100-hall-a: 4,375 nodes"), "{out}");
    assert!(
        !out.contains("Warnings:"),
        "Cortex plans without warnings:\n{out}"
    );
    // Never one line per node.
    assert!(out.lines().count() < 120, "{} lines", out.lines().count());
}
