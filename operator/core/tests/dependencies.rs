//! The pure crates stay pure (DESIGN.md §1): neither kelvin-crds nor kelvin-core depends on
//! kube's client, its runtime, tokio or an HTTP stack, whatever features other crates turn on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

use std::process::Command;

const FORBIDDEN: [&str; 6] = [
    "kube-client",
    "kube-runtime",
    "tokio",
    "hyper",
    "tower",
    "rustls",
];

/// Not `--offline`: on a fresh machine the packages of other platforms in the lock file were
/// never downloaded by the build, and `cargo tree` reads every manifest.
fn normal_dependencies(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-p", package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_core_and_the_api_crate_have_no_client_and_no_async_runtime() {
    for package in ["kelvin-core", "kelvin-crds"] {
        let crates = normal_dependencies(package);
        assert!(
            crates.iter().any(|c| c == "k8s-openapi"),
            "{package}: {crates:?}"
        );
        let found: Vec<&String> = crates
            .iter()
            .filter(|c| FORBIDDEN.contains(&c.as_str()))
            .collect();
        assert!(found.is_empty(), "{package} depends on {found:?}");
    }
}
