//! Refusals of the live commands that need no cluster to prove: an unreachable API server
//! (one clear line and the `--offline` hint), no terminal to ask on (refused before any
//! connection is tried), a file that is no saved plan, a saved plan of another format,
//! `--inventory` beside a kubeconfig, `--out` without a cluster, a bad `--timeout`.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the report

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `kelvin ARGS` with HOME in a scratch directory (no ~/.kube/config) and `kubeconfig`.
fn kelvin(args: &[&str], kubeconfig: Option<&Path>) -> Run {
    let home = scratch("home");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelvin"));
    cmd.args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null());
    if let Some(path) = kubeconfig {
        cmd.env("KUBECONFIG", path);
    }
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kelvin-live-refusals-{}", std::process::id()));
    let path = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    path
}

/// A kubeconfig naming an API server nothing listens on.
fn unreachable_kubeconfig(test: &str) -> PathBuf {
    // One file per test: the tests run at once.
    let path = scratch(&format!("{test}.kubeconfig"));
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\nclusters:\n- name: nowhere\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: nowhere\n  context: {cluster: nowhere, user: nobody}\nusers:\n- name: nobody\n  user: {token: x}\n",
    )
    .unwrap();
    path
}

const SPEC: &str = "examples/small/cluster.yaml";

#[test]
fn an_unreachable_cluster_is_one_clear_line_with_the_offline_hint() {
    let kubeconfig = unreachable_kubeconfig("an_unreachab");
    for args in [
        &["plan", "-f", SPEC][..],
        &["status"],
        &["apply", "-f", SPEC, "--auto-approve"],
        &["destroy", "lab", "--auto-approve"],
    ] {
        let run = kelvin(args, Some(&kubeconfig));
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        let mut lines = run.stderr.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with(
                "error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (context nowhere): "
            ),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            lines
                .next()
                .unwrap_or_default()
                .contains("kelvin plan --offline"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // --context names one the kubeconfig lacks.
    let run = kelvin(
        &["plan", "-f", SPEC, "--context", "other"],
        Some(&kubeconfig),
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("other"), "{}", run.stderr);
}

#[test]
fn no_terminal_to_ask_on_is_refused_before_anything_is_tried() {
    let kubeconfig = unreachable_kubeconfig("no_terminal_");
    for args in [
        &["apply", "-f", SPEC][..],
        &["destroy", "lab"],
        &["zone", "set", "lab-row-1", "--state", "Maintenance"],
    ] {
        let run = kelvin(args, Some(&kubeconfig));
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(
            run.stderr.starts_with(
                "error: cannot ask for approval: standard input is not a terminal\n  fix: "
            ),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
        // Refused before connecting: the unreachable server is never mentioned.
        assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    }
}

#[test]
fn files_that_are_no_plan_of_this_kelvin_are_refused() {
    let kubeconfig = unreachable_kubeconfig("files_that_a");
    let run = kelvin(&["apply", SPEC], Some(&kubeconfig));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("is not a saved plan")
            && run.stderr.contains("-f examples/small/cluster.yaml"),
        "{}",
        run.stderr
    );
    let old = scratch("old.plan");
    std::fs::write(&old, r#"{"kind":"KelvinPlan","version":0,"clusters":[]}"#).unwrap();
    let run = kelvin(&["apply", old.to_str().unwrap()], Some(&kubeconfig));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("saved plan of format 0; this kelvin reads format 1"),
        "{}",
        run.stderr
    );
}

#[test]
fn flags_that_do_not_fit_the_mode_are_refused() {
    let kubeconfig = unreachable_kubeconfig("flags_that_d");
    let inventory = "cli/tests/fixtures/inventory-shared-node.yaml";
    let run = kelvin(
        &["plan", "-f", SPEC, "--inventory", inventory],
        Some(&kubeconfig),
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("add --offline"), "{}", run.stderr);
    // No cluster at all: --inventory plans offline as before, --out has nothing to save.
    let run = kelvin(&["plan", "-f", SPEC, "--inventory", inventory], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = kelvin(&["plan", "-f", SPEC, "--out", "/tmp/x.plan"], None);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("saves a plan of a cluster"),
        "{}",
        run.stderr
    );
    // No cluster: a plain plan is the offline one.
    let run = kelvin(&["plan", "-f", SPEC], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("nodes simulated"), "{}", run.stdout);
    // Durations need a unit; usage errors exit 1.
    let run = kelvin(&["apply", "-f", SPEC, "--timeout", "10"], Some(&kubeconfig));
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("a unit is needed"), "{}", run.stderr);
    let run = kelvin(&["apply"], Some(&kubeconfig));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("<PATH>") || run.stderr.contains("<PLAN>"),
        "{}",
        run.stderr
    );
}
