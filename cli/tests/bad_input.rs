//! Bad input (issue 2, "Bad input"): each case runs the built `kelvin` binary and checks that
//! it exits 1 without panicking, with a message a person can act on: the field path, the file's
//! line and column where there is one, and what would fix it. A few valid inputs check the
//! other side: the examples validate and plan, and a Degraded zone is a warning, not an error.
//!
//! Most specs are `examples/small/cluster.yaml` with one thing broken, written to a scratch
//! directory at test time so they follow the example; standalone inputs (an alias bomb, an
//! inventory) are in `tests/fixtures/`.

// Helpers of a test crate fail the test by panicking (clippy exempts only #[test] functions).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    ffi::OsStr,
    io::{BufRead, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const KELVIN: &str = env!("CARGO_BIN_EXE_kelvin");

/// The end of a run of `kelvin`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(KELVIN);
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    command
}

fn kelvin<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let output = command(args).output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A file of the repository, from the workspace root.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn small() -> String {
    std::fs::read_to_string(repo("examples/small/cluster.yaml")).unwrap()
}

/// `bytes` written to `name` in this test binary's scratch directory.
fn write(name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_input");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `text` with `from` replaced by `to`, where `from` occurs exactly once (so that a change to
/// the example fails here, loudly, instead of testing nothing).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} should occur once in the example"
    );
    text.replacen(from, to, 1)
}

/// The small example with one thing changed, written to `name`. Returns the file and its text.
fn small_with(name: &str, from: &str, to: &str) -> (PathBuf, String) {
    let text = replace_once(&small(), from, to);
    (write(name, &text), text)
}

/// 1-based line and column where `needle` starts in `text`.
fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    line_col_at(text, offset)
}

/// 1-based line and column of byte `offset` of `text`.
fn line_col_at(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    (line, column)
}

/// `file:line:col` of `needle` in `text`, as diagnostics print it.
fn at(file: &Path, text: &str, needle: &str) -> String {
    let (line, column) = line_col(text, needle);
    format!("{}:{line}:{column}: ", file.display())
}

/// Exit code 1 and no panic.
fn assert_rejected(run: &Run) {
    assert!(
        !run.stderr.contains("panicked"),
        "kelvin panicked:\n{run:?}"
    );
    assert_eq!(run.code, Some(1), "expected exit code 1:\n{run:?}");
}

/// Every `needle` is on stderr.
fn assert_says(run: &Run, needles: &[&str]) {
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr should contain {needle:?}:\n{run:?}"
        );
    }
}

fn validate(file: &Path) -> Run {
    kelvin(&[OsStr::new("validate"), OsStr::new("-f"), file.as_os_str()])
}

// ---------------------------------------------------------------------------------------------
// Fields, kinds and versions.

#[test]
fn misspelt_field_is_named_with_its_position_and_the_close_one() {
    let (file, text) = small_with(
        "misspelt-field.yaml",
        "    expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
        "    expectedNode: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}spec.gpuPools[0].expectedNode: unknown field \"expectedNode\"",
                at(&file, &text, "expectedNode: 4")
            ),
            "fix: did you mean \"expectedNodes\"?",
        ],
    );
}

#[test]
fn unknown_field_with_no_close_one_lists_the_known_fields() {
    let (file, text) = small_with(
        "unknown-field.yaml",
        "    pue: 1.5",
        "    operator: acme\n    pue: 1.5",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}spec.site.operator: unknown field \"operator\"",
                at(&file, &text, "operator: acme")
            ),
            "known fields here: ",
            "powerBudgetMW",
            "pue",
        ],
    );
}

#[test]
fn wrong_api_version_names_the_served_one() {
    let (file, text) = small_with(
        "wrong-api-version.yaml",
        "apiVersion: kelvin.dev/v1alpha1",
        "apiVersion: kelvin.dev/v1",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}apiVersion: apiVersion \"kelvin.dev/v1\" is not served by Kelvin",
                at(&file, &text, "kelvin.dev/v1")
            ),
            "fix: use apiVersion: kelvin.dev/v1alpha1",
        ],
    );
}

#[test]
fn wrong_kind_suggests_gpu_cluster() {
    let (file, text) = small_with("wrong-kind.yaml", "kind: GpuCluster", "kind: GPUCluster");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}kind: kind \"GPUCluster\" is not one Kelvin reads here",
                at(&file, &text, "GPUCluster")
            ),
            "fix: did you mean \"GpuCluster\"?",
        ],
    );
}

#[test]
fn unrelated_kind_says_what_kelvin_reads() {
    let (file, _) = small_with("deployment.yaml", "kind: GpuCluster", "kind: Deployment");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "kind \"Deployment\" is not one Kelvin reads here",
            "fix: use kind: GpuCluster (with apiVersion: kelvin.dev/v1alpha1)",
        ],
    );
}

#[test]
fn missing_kind_is_a_required_value() {
    let (file, _) = small_with("no-kind.yaml", "kind: GpuCluster\n", "");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(&run, &["kind: Required value", "fix: add kind: GpuCluster"]);
}

// ---------------------------------------------------------------------------------------------
// The file itself: YAML syntax, encoding, emptiness, documents, aliases.

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let (file, text) = small_with(
        "syntax-error.yaml",
        "effect: NoSchedule}]",
        "effect: NoSchedule]",
    );
    let run = validate(&file);
    assert_rejected(&run);
    // The flow mapping opened here is closed by ']'.
    assert_says(
        &run,
        &[
            &format!(
                "{}YAML: mismatched bracket",
                at(&file, &text, "{key: lab.example.com/ci")
            ),
            "fix: fix the YAML syntax at this position",
        ],
    );
    assert!(
        !run.stderr.contains("error: line"),
        "the parser's own location prefix should not be repeated:\n{run:?}"
    );
}

#[test]
fn tab_indentation_is_a_syntax_error_at_the_tab() {
    let text = "apiVersion: kelvin.dev/v1alpha1\nkind: GpuCluster\nmetadata:\n\tname: lab\n";
    let file = write("tab.yaml", text);
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(&run, &[&format!("{}:4:", file.display()), "tabs"]);
}

#[test]
fn duplicate_key_is_named() {
    let (file, _) = small_with(
        "duplicate-key.yaml",
        "    pue: 1.5",
        "    pue: 1.5\n    pue: 1.4",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "pue is given twice in the same mapping",
            "fix: keep one pue",
        ],
    );
}

#[test]
fn empty_file_is_rejected() {
    for (name, text) in [
        ("empty.yaml", ""),
        ("comments-only.yaml", "# nothing here yet\n"),
        ("separators-only.yaml", "---\n---\n"),
    ] {
        let file = write(name, text);
        let run = validate(&file);
        assert_rejected(&run);
        assert_says(
            &run,
            &[
                &format!("{}:1:1: the file holds no YAML documents", file.display()),
                "fix: add a GpuCluster",
            ],
        );
    }
}

#[test]
fn non_utf8_bytes_are_located() {
    // "Café" in Latin-1 in a comment of the fifth line.
    let text = small();
    let mut bytes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        bytes.extend_from_slice(line.as_bytes());
        if index == 4 {
            bytes.extend_from_slice(b" # Caf\xe9");
        }
        bytes.push(b'\n');
    }
    let column = text.lines().nth(4).unwrap().len() + " # Caf".len() + 1;
    let file = write("latin1.yaml", &bytes);
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}:5:{column}: the file is not UTF-8 text (invalid byte 0xe9)",
                file.display()
            ),
            "fix: save the file as UTF-8",
        ],
    );
}

#[test]
fn every_document_of_a_file_is_read_and_each_error_reported() {
    let first = replace_once(&small(), "kind: GpuCluster", "kind: GPUCluster");
    let second = replace_once(
        &replace_once(&small(), "name: lab\n", "name: lab-2\n"),
        "pue: 1.5 ",
        "pue: 0.9 ",
    );
    let text = format!("{first}---\n{second}");
    let file = write("two-bad-documents.yaml", &text);
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}kind: kind \"GPUCluster\"",
                at(&file, &text, "GPUCluster")
            ),
            &format!(
                "{}spec.site.pue: Invalid value: 0.9: should be greater than or equal to 1",
                at(&file, &text, "0.9")
            ),
        ],
    );
}

#[test]
fn every_document_of_a_file_is_validated() {
    let second = replace_once(&small(), "name: lab\n", "name: lab-2\n");
    let file = write("two-documents.yaml", format!("{}---\n{second}", small()));
    let run = validate(&file);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("GpuCluster lab is valid"), "{run:?}");
    assert!(run.stdout.contains("GpuCluster lab-2 is valid"), "{run:?}");

    // One valid and one invalid document: the file fails, the valid one is still checked.
    let bad = replace_once(&second, "pue: 1.5 ", "pue: 0.9 ");
    let file = write("valid-then-invalid.yaml", format!("{}---\n{bad}", small()));
    let run = validate(&file);
    assert_rejected(&run);
    assert!(run.stdout.contains("GpuCluster lab is valid"), "{run:?}");
    assert_says(&run, &["spec.site.pue"]);
}

#[test]
fn null_documents_do_not_shift_positions() {
    let text = format!(
        "---\n~\n---\n{}",
        replace_once(&small(), "kind: GpuCluster\n", "")
    );
    let file = write("null-document-first.yaml", &text);
    let run = validate(&file);
    assert_rejected(&run);
    // A missing field points at its document, which starts at the apiVersion line.
    assert_says(
        &run,
        &[&format!(
            "{}kind: Required value",
            at(&file, &text, "apiVersion:")
        )],
    );
}

/// Peak resident memory of a running process, in KiB (Linux; None elsewhere or once it exited).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[test]
fn alias_bomb_fails_fast_in_bounded_memory() {
    let mut child = command(&["validate", "-f", "tests/fixtures/alias-bomb.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // A guard against hanging, not a speed test: the machine may be busy. Memory is the bound
    // that matters, and it does not depend on load.
    let deadline = Duration::from_secs(60);
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if started.elapsed() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("kelvin still reading the alias bomb after {deadline:?} ({peak_kib} KiB)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let run = Run {
        code: status.code(),
        stdout: String::new(),
        stderr,
    };
    assert_rejected(&run);
    // Reading it in full would take gigabytes; the budget stops it within a few MB.
    assert!(
        peak_kib < 256 * 1024,
        "peak memory {peak_kib} KiB:\n{run:?}"
    );
    assert_says(
        &run,
        &[
            "tests/fixtures/alias-bomb.yaml:",
            "YAML aliases expand to more than",
            "alias bomb",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Numbers.

#[test]
fn number_out_of_range_names_the_limit() {
    let (file, text) = small_with(
        "out-of-range.yaml",
        "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: L40S",
        "expectedNodes: 2000000\n    accelerator:\n      vendor: nvidia\n      model: L40S",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[&format!(
            "{}spec.gpuPools[1].expectedNodes: Invalid value: 2000000: should be less than or equal to 200000",
            at(&file, &text, "2000000")
        )],
    );
}

#[test]
fn overflowing_number_says_it_overflows_and_the_range() {
    let (file, text) = small_with(
        "overflow.yaml",
        "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: A100",
        "expectedNodes: 99999999999999999999999\n    accelerator:\n      vendor: nvidia\n      model: A100",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}spec.gpuPools[0].expectedNodes: Invalid value: 1e+23: the number overflows a 64-bit integer",
                at(&file, &text, "99999999999999999999999")
            ),
            "fix: use a whole number from 0 to 200000",
        ],
    );
}

#[test]
fn negative_power_budget_is_rejected() {
    let (file, text) = small_with(
        "negative-power.yaml",
        "powerBudgetMW: 0.2 ",
        "powerBudgetMW: -5 ",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[&format!(
            "{}spec.site.powerBudgetMW: Invalid value: -5: should be greater than or equal to 0",
            at(&file, &text, "-5")
        )],
    );
}

#[test]
fn pue_below_one_is_rejected() {
    let (file, text) = small_with("low-pue.yaml", "pue: 1.5 ", "pue: 0.9 ");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[&format!(
            "{}spec.site.pue: Invalid value: 0.9: should be greater than or equal to 1",
            at(&file, &text, "0.9")
        )],
    );
}

#[test]
fn infinite_number_is_rejected() {
    let (file, text) = small_with("infinite-pue.yaml", "pue: 1.5 ", "pue: .inf ");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "{}spec.site.pue: Invalid value: .inf: must be a finite number",
                at(&file, &text, ".inf")
            ),
            "fix: use a number such as 1.3",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// References and names (CEL rules, run offline).

#[test]
fn pool_naming_a_missing_fabric_is_rejected() {
    let (file, _) = small_with(
        "dangling-fabric.yaml",
        "fabric: lab-eth",
        "fabric: lab-roce",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "spec.gpuPools[1] (l40s-shared) names fabric lab-roce, which is not in spec.fabrics: add it or fix the pool's fabric",
        ],
    );
}

#[test]
fn quota_naming_a_missing_pool_is_rejected() {
    let (file, _) = small_with(
        "dangling-quota.yaml",
        "gpuQuota: {l40s-shared: 16}",
        "gpuQuota: {l40s: 16}",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "spec.scheduling.tenants[1] (ci) has a gpuQuota for pool l40s, which is not in spec.gpuPools: add the pool or fix the quota's pool name",
        ],
    );
}

#[test]
fn duplicate_pool_names_are_rejected() {
    let (file, text) = small_with("duplicate-pool.yaml", "name: l40s-shared", "name: a100-mig");
    let run = validate(&file);
    assert_rejected(&run);
    // The second pool's item starts at its name.
    let (line, column) = line_col_at(&text, text.rfind("- name: a100-mig").unwrap() + 2);
    assert_says(
        &run,
        &[
            &format!(
                "{}:{line}:{column}: spec.gpuPools[1]: Duplicate value: {{\"name\":\"a100-mig\"}}",
                file.display()
            ),
            "fix: spec.gpuPools[0] has the same name; names must be unique",
        ],
    );
}

#[test]
fn degraded_zone_without_degraded_capacity_is_rejected() {
    let (file, text) = small_with(
        "degraded-no-capacity.yaml",
        "    capacityKW: 60 ",
        "    state: Degraded\n    capacityKW: 60 ",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[&format!(
            "{}spec.coolingZones[0]: degradedCapacityKW is required when state is Degraded",
            at(&file, &text, "name: lab-row-1")
        )],
    );
}

// ---------------------------------------------------------------------------------------------
// Physics and devices (the model).

#[test]
fn mig_profile_the_model_lacks_is_rejected_with_the_ones_it_has() {
    // 1g.20gb is an A100-80GB / H100 profile, not one of the A100-40GB.
    let (file, _) = small_with("mig-profile.yaml", "profile: 1g.5gb", "profile: 1g.20gb");
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "spec.gpuPools[0].sharing.profile: MIG profile \"1g.20gb\" does not exist on A100-SXM4-40GB",
            "fix: use one of 1g.5gb, ",
            "7g.40gb",
        ],
    );
}

/// The Cortex example with a 100 MW budget, written to `name`.
fn cortex_over_budget(name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo("examples/cortex/cluster.yaml")).unwrap();
    write(
        name,
        replace_once(&text, "powerBudgetMW: 130", "powerBudgetMW: 100"),
    )
}

#[test]
fn power_over_budget_names_the_figures_and_the_fix() {
    // 8,750 servers x 10.2 kW = 89.25 MW of IT load; x PUE 1.3 = 116.025 MW at the facility.
    let run = validate(&cortex_over_budget("cortex-over-budget.yaml"));
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "spec.site.powerBudgetMW: facility load 116.03 MW (IT 89.25 MW x PUE 1.3) exceeds the budget of 100.00 MW by 16.03 MW",
            "fix: raise spec.site.powerBudgetMW to at least ",
            "or lower spec.gpuPools[",
            "kW each at the facility",
        ],
    );
}

/// The figure after `prefix` in `text`, e.g. "at least 116.0" -> 116.0.
fn figure_after(text: &str, prefix: &str) -> f64 {
    let start = text.find(prefix).unwrap() + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.trim_end_matches('.').parse().unwrap()
}

#[test]
fn power_over_budget_suggests_a_budget_that_fits() {
    let run = validate(&cortex_over_budget("cortex-over-budget-fix.yaml"));
    assert_rejected(&run);
    let suggested = figure_after(&run.stderr, "raise spec.site.powerBudgetMW to at least ");
    assert!(suggested >= 116.025, "suggested {suggested} MW:\n{run:?}");

    // The lab: 36.4 kW of IT x PUE 1.5 = 54.6 kW against a 50 kW budget.
    let (file, _) = small_with(
        "small-over-budget.yaml",
        "powerBudgetMW: 0.2 ",
        "powerBudgetMW: 0.05 ",
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert!(!run.stderr.contains("by 0.00 MW"), "{run:?}");
    let suggested = figure_after(&run.stderr, "raise spec.site.powerBudgetMW to at least ");
    assert!(
        (0.0546..0.06).contains(&suggested),
        "suggested {suggested} MW:\n{run:?}"
    );
}

/// The small example with the CI pool selecting nodes by a label one DGX also carries.
fn shared_node_spec(name: &str) -> PathBuf {
    small_with(
        name,
        "matchLabels: {kelvin.dev/sku: l40s-2u}",
        "matchLabels: {lab.example.com/ci: \"true\"}",
    )
    .0
}

const SHARED_NODE_INVENTORY: &str = "tests/fixtures/inventory-shared-node.yaml";

#[test]
fn node_matched_by_two_pools_is_named_with_both_pools() {
    // The inventory is fine for the example as it is: only the overlapping selector fails.
    let run = kelvin(&[
        "validate",
        "-f",
        "../examples/small/cluster.yaml",
        "--inventory",
        SHARED_NODE_INVENTORY,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");

    let spec = shared_node_spec("shared-node.yaml");
    let run = kelvin(&[
        OsStr::new("validate"),
        OsStr::new("-f"),
        spec.as_os_str(),
        OsStr::new("--inventory"),
        OsStr::new(SHARED_NODE_INVENTORY),
    ]);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "dgx-03",
            "spec.gpuPools[0] (a100-mig)",
            "spec.gpuPools[1] (l40s-shared)",
            "fix: make the nodeSelectors of the two pools disjoint",
        ],
    );
    for other in ["dgx-01", "l40s-01"] {
        assert!(
            !run.stderr.contains(other),
            "{other} is in one pool:\n{run:?}"
        );
    }
}

#[test]
fn plan_leaves_a_node_of_two_pools_alone_and_plans_the_rest() {
    // Node-scoped (DESIGN.md §3): one mislabelled node does not stop the others.
    let spec = shared_node_spec("shared-node-plan.yaml");
    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        spec.as_os_str(),
        OsStr::new("--inventory"),
        OsStr::new(SHARED_NODE_INVENTORY),
        OsStr::new("-o"),
        OsStr::new("json"),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let left_alone = plan["nodesLeftAlone"].to_string();
    for needle in [
        "dgx-03",
        "a100-mig",
        "l40s-shared",
        "leaves such nodes untouched",
    ] {
        assert!(left_alone.contains(needle), "{needle}: {left_alone}");
    }
    // Its pools are planned without it: dgx-01, 02, 04 and l40s-01..03.
    let changed: Vec<u64> = plan["nodeChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodes"].as_u64().unwrap())
        .collect();
    assert_eq!(changed, [3, 3], "{run:?}");
}

#[test]
fn plan_names_the_errors_it_refuses_to_plan() {
    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        cortex_over_budget("cortex-over-budget-plan.yaml").as_os_str(),
    ]);
    assert_rejected(&run);
    assert_says(&run, &["spec.site.powerBudgetMW: facility load"]);
}

// ---------------------------------------------------------------------------------------------
// Files that are not there, and inventories.

#[test]
fn missing_file_is_named() {
    let run = kelvin(&["validate", "-f", "tests/fixtures/no-such-spec.yaml"]);
    assert_rejected(&run);
    assert_says(
        &run,
        &["error: opening tests/fixtures/no-such-spec.yaml: No such file or directory"],
    );

    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        "../examples/small/cluster.yaml",
        "--inventory",
        "tests/fixtures/no-such-inventory.yaml",
    ]);
    assert_rejected(&run);
    assert_says(
        &run,
        &["error: opening tests/fixtures/no-such-inventory.yaml: No such file or directory"],
    );
}

#[test]
fn empty_inventory_says_what_an_inventory_holds() {
    let file = write("empty-inventory.yaml", "");
    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        OsStr::new("../examples/small/cluster.yaml"),
        OsStr::new("--inventory"),
        file.as_os_str(),
    ]);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "the file holds no YAML documents",
            "kind: Inventory",
            "kubectl get nodes -o yaml",
        ],
    );
    assert!(!run.stderr.contains("add a GpuCluster"), "{run:?}");
}

#[test]
fn inventory_node_listed_twice_is_named() {
    let file = write(
        "inventory-twice.yaml",
        "apiVersion: kelvin.dev/v1alpha1\nkind: Inventory\nnodes:\n- {name: dgx-01}\n- {name: dgx-01}\n",
    );
    let run = kelvin(&[
        OsStr::new("validate"),
        OsStr::new("-f"),
        OsStr::new("../examples/small/cluster.yaml"),
        OsStr::new("--inventory"),
        file.as_os_str(),
    ]);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "node \"dgx-01\" is listed twice",
            "fix: list each node once",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Exact limits of power, and plurals.

#[test]
fn a_power_budget_met_exactly_is_met() {
    // Phase 2: 326.85 MW of IT x PUE 1.3 = 424.905 MW, which floating point makes
    // 424.90500000000003; a budget of exactly that was "exceeded by 0.000 MW".
    let text = std::fs::read_to_string(repo("examples/cortex/phase2.yaml")).unwrap();
    let file = write(
        "phase2-exact-budget.yaml",
        replace_once(&text, "powerBudgetMW: 500", "powerBudgetMW: 424.905"),
    );
    let run = validate(&file);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("is valid"), "{run:?}");

    // A watt less is over, and says by how much (never "by 0.000 MW"); the fix names an H100
    // pool (10.2 kW a node), not the larger GB200 one (6.6 kW).
    let file = write(
        "phase2-a-watt-short.yaml",
        replace_once(&text, "powerBudgetMW: 500", "powerBudgetMW: 424.904999"),
    );
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            "exceeds the budget of 424.90 MW by 0.001 MW",
            "fix: raise spec.site.powerBudgetMW to at least 424.91, or lower spec.gpuPools[1].expectedNodes (h100-hall-b) by 1 node (13.3 kW each at the facility)",
        ],
    );
}

#[test]
fn counts_of_one_are_singular() {
    // 54.6 kW against 50: one error, fixed by one a100-mig node (9.75 kW at the facility).
    let (file, _) = small_with(
        "one-error.yaml",
        "powerBudgetMW: 0.2 ",
        "powerBudgetMW: 0.05 ",
    );
    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        file.as_os_str(),
    ]);
    assert_rejected(&run);
    assert!(
        run.stdout
            .contains("The spec is invalid (1 error, printed above)"),
        "{run:?}"
    );
    assert_says(&run, &["by 1 node (", "by 0.005 MW"]);

    // One l40s-shared node (and a quota it holds).
    let text = replace_once(
        &small(),
        "expectedNodes: 4\n    accelerator:\n      vendor: nvidia\n      model: L40S",
        "expectedNodes: 1\n    accelerator:\n      vendor: nvidia\n      model: L40S",
    );
    let file = write(
        "one-node.yaml",
        replace_once(&text, "{l40s-shared: 16}", "{l40s-shared: 4}"),
    );
    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        file.as_os_str(),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("~ l40s-shared: 1 node\n"), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// The command line and the output streams.

#[test]
fn usage_errors_exit_1_even_with_detailed_exitcode() {
    // clap's own code for a usage error is 2, which --detailed-exitcode means "changes".
    for (args, says) in [
        (
            &[
                "plan",
                "--offline",
                "--detailed-exitcode",
                "-o",
                "yaml",
                "-f",
                "../examples/small/cluster.yaml",
            ][..],
            "invalid value 'yaml' for '--output <OUTPUT>'",
        ),
        (
            &[
                "plan",
                "--detailed-exitcode",
                "--offline",
                "--no-such-flag",
                "-f",
                "x.yaml",
            ][..],
            "unexpected argument '--no-such-flag'",
        ),
        (
            &["plan", "--offline", "--detailed-exitcode"][..],
            "--filename <PATH>",
        ),
        (&["validate"][..], "--filename <PATH>"),
        (&[][..], "Usage: kelvin [OPTIONS] <COMMAND>"),
    ] {
        let run = kelvin(args);
        assert_rejected(&run);
        assert_says(&run, &[says]);
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    }
    // Asking for help or the version is not an error.
    for args in [
        &["--help"][..],
        &["--version"],
        &["plan", "--help"],
        &["help", "plan"],
    ] {
        let run = kelvin(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(!run.stdout.is_empty(), "{args:?}: {run:?}");
    }
}

/// A pipe whose reader has already gone, as `kelvin … | head -1` leaves one once head exits:
/// every write to it fails with EPIPE, whatever the timing.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// `kelvin args` with a closed pipe for stdout (and for stderr too when `both`).
fn kelvin_into_closed_pipe(args: &[&str], both: bool) -> Run {
    let stderr = if both {
        Stdio::from(closed_pipe())
    } else {
        Stdio::piped()
    };
    let output = command(args)
        .stdout(closed_pipe())
        .stderr(stderr)
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_commands_exit_code() {
    // Like git and kubectl, nothing is said about it; unlike them (SIGPIPE, 141) the exit code
    // is the one the command returns anyway, so `set -o pipefail` still sees "changes".
    let cortex = "../examples/cortex/cluster.yaml";
    for (args, code) in [
        (
            &["plan", "--offline", "--detailed-exitcode", "-f", cortex][..],
            2,
        ),
        (&["plan", "--offline", "-f", cortex][..], 0),
        (
            &[
                "plan",
                "--offline",
                "--detailed-exitcode",
                "-o",
                "json",
                "-f",
                cortex,
            ][..],
            2,
        ),
        (&["render", "-f", cortex][..], 0),
        (&["validate", "-f", cortex][..], 0),
        (&["crd"][..], 0),
    ] {
        let run = kelvin_into_closed_pipe(args, false);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:?}");
        assert!(!run.stderr.contains("Broken pipe"), "{args:?}: {run:?}");
        assert_eq!(run.stderr, "", "{args:?}: nothing said about it");
        assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
    }

    // An invalid spec with stderr closed too (`2>&1 | head -1`): still 1, not a panic's 101.
    let run = kelvin_into_closed_pipe(
        &[
            "plan",
            "--offline",
            "--detailed-exitcode",
            "-f",
            cortex_over_budget("cortex-over-budget-closed.yaml")
                .to_str()
                .unwrap(),
        ],
        true,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
}

#[test]
fn plan_into_head_ends_quietly() {
    // What a person does: read the first line, then close the pipe.
    let mut child = command(&[
        "plan",
        "--offline",
        "--detailed-exitcode",
        "-f",
        "../examples/cortex/cluster.yaml",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("GpuCluster cortex — planned against"),
        "{first}"
    );
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: first,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert_eq!(run.code, Some(2), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// The read limit.

/// `kelvin`'s read limit (cli/src/input.rs MAX_FILE_BYTES).
/// The read limit of spec files, and of YAML inventories (read whole).
const SPEC_READ_LIMIT: u64 = 4 * 1024 * 1024;
const YAML_INVENTORY_READ_LIMIT: u64 = 512 * 1024 * 1024;

/// A valid spec, then nothing (a hole: no disk used) up to one byte past `limit`, where an
/// invalid document ends the file. A reader that stops at the limit sees only the valid one.
fn spec_past_the_read_limit(name: &str, limit: u64) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    let invalid = b"\n---\napiVersion: kelvin.dev/v1alpha1\nkind: GpuCluster\nmetadata: {name: over}\nspec: {}\n";
    let path = write(name, small());
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(limit + 1 - invalid.len() as u64))
        .unwrap();
    file.write_all(invalid).unwrap();
    assert_eq!(file.metadata().unwrap().len(), limit + 1);
    path
}

#[test]
fn a_file_over_the_read_limit_is_an_error_naming_it_and_the_limit() {
    let file = spec_past_the_read_limit("over-the-read-limit.yaml", SPEC_READ_LIMIT);
    let run = validate(&file);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "error: {} is larger than the read limit of 4 MiB (4,194,304 bytes)",
                file.display()
            ),
            "fix: a GpuCluster spec is far smaller",
        ],
    );
    assert!(!run.stdout.contains("valid"), "{run:?}");
    std::fs::remove_file(&file).unwrap();

    let file = spec_past_the_read_limit(
        "inventory-over-the-read-limit.yaml",
        YAML_INVENTORY_READ_LIMIT,
    );

    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        OsStr::new("../examples/small/cluster.yaml"),
        OsStr::new("--inventory"),
        file.as_os_str(),
    ]);
    assert_rejected(&run);
    assert_says(
        &run,
        &[
            &format!(
                "error: {} is larger than the read limit of 512 MiB",
                file.display()
            ),
            "fix: give an inventory of this cluster's nodes only",
        ],
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn standard_input_over_the_read_limit_is_an_error() {
    // Standard input has no size to look at first: it is read up to the limit, and a byte more
    // is an error (here from a file with a hole, so the bytes cost no disk).
    let file = spec_past_the_read_limit("stdin-over-the-read-limit.yaml", SPEC_READ_LIMIT);
    let output = command(&["validate", "-f", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_rejected(&run);
    assert_says(
        &run,
        &["error: <stdin> is larger than the read limit of 4 MiB (4,194,304 bytes)"],
    );
}

// ---------------------------------------------------------------------------------------------
// Valid input.

#[test]
fn small_example_validates() {
    let run = kelvin(&["validate", "-f", "../examples/small/cluster.yaml"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("GpuCluster lab is valid"), "{run:?}");
    assert!(!run.stderr.contains("error"), "{run:?}");
}

#[test]
fn cortex_plans_with_changes() {
    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        "../examples/cortex/cluster.yaml",
        "--detailed-exitcode",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["power"]["itMW"].as_f64(), Some(89.25), "{plan:#}");
    assert!(plan["summary"]["add"].as_u64().unwrap() > 0, "{plan:#}");
    assert_eq!(plan["fabrics"][0]["tiers"].as_u64(), Some(3), "{plan:#}");
    assert_eq!(
        plan["coolingZones"].as_array().unwrap().len(),
        4,
        "{plan:#}"
    );

    let run = kelvin(&[
        "plan",
        "--offline",
        "-f",
        "../examples/cortex/cluster.yaml",
        "--detailed-exitcode",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stdout.contains("Plan: "), "{run:?}");
}

fn degraded_small() -> PathBuf {
    small_with(
        "degraded.yaml",
        "    capacityKW: 60 ",
        "    state: Degraded\n    degradedCapacityKW: 20\n    capacityKW: 60 ",
    )
    .0
}

#[test]
fn degraded_zone_is_a_warning_with_a_gpu_power_cap() {
    let file = degraded_small();
    let run = validate(&file);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("is valid (1 warning)"), "{run:?}");
    // 8 nodes hold 18 kW of host power: 2 kW for 48 GPUs is under their 100 W minimum, so
    // nodes leave service and the GPUs left are capped at what fits.
    assert_says(
        &run,
        &[
            "warning: ",
            "degraded.yaml:23:12: spec.coolingZones[0].state: zone lab-row-1 is Degraded to 20.0 kW",
            "GPUs capped at ",
            "must leave service",
        ],
    );
    let cap = figure_after(&run.stderr, "GPUs capped at ");
    assert!(
        (100.0..=400.0).contains(&cap),
        "a cap between the GPUs' minimum and TDP:\n{run:?}"
    );

    let run = kelvin(&[
        OsStr::new("plan"),
        OsStr::new("--offline"),
        OsStr::new("-f"),
        file.as_os_str(),
        OsStr::new("-o"),
        OsStr::new("json"),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let zone = &plan["coolingZones"][0];
    assert_eq!(zone["state"], "Degraded", "{plan:#}");
    assert_eq!(
        zone["gpuPowerCapWatts"].as_f64(),
        Some(cap),
        "the plan's cap is the one validate warned about:\n{plan:#}"
    );
    let must_leave = zone["nodesMustLeave"].as_u64().unwrap();
    assert!(must_leave > 0, "{plan:#}");
    // This step takes out as many as the pools' maxUnavailable allows (1 each here).
    let now = plan["leavingNow"][0].as_u64().unwrap();
    assert!((1..=must_leave).contains(&now), "{plan:#}");
    assert!(!plan["warnings"].as_array().unwrap().is_empty(), "{plan:#}");
}
