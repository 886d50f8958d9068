//! Status: conditions a person can act on, built from the plan and the snapshot alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: a failure is the report

use kelvin_core::{
    observed::{Observed, ServedApis, Timestamp, simulate},
    plan::plan,
    status::status,
};
use kelvin_crds::{load, v1alpha1::GpuCluster};

fn small() -> GpuCluster {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/small/cluster.yaml"
    ))
    .unwrap();
    let (mut clusters, diagnostics) = load::load_gpu_clusters("cluster.yaml", &text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut cluster = clusters.remove(0).0;
    cluster.metadata.generation = Some(3);
    cluster
}

fn condition<'a>(
    status: &'a kelvin_crds::v1alpha1::GpuClusterStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn a_missing_kueue_is_named_and_everything_else_still_converges() {
    let cluster = small();
    let mut observed = Observed::new(simulate(&cluster.spec), at("2026-12-01T10:00:00Z")).unwrap();
    observed.apis = ServedApis {
        kueue: false,
        volcano: false,
    };
    let planned = plan(&cluster, &observed).unwrap();
    // No Kueue objects, but namespaces, quotas and device plugins as ever.
    assert!(planned.desired.cluster_queues.is_empty() && planned.desired.topologies.is_empty());
    assert!(!planned.desired.resource_quotas.is_empty() && !planned.desired.daemon_sets.is_empty());
    let status = status(&cluster, &planned, &observed);
    let scheduling = condition(&status, "SchedulingPolicies");
    assert_eq!(
        (scheduling.status.as_str(), scheduling.reason.as_str()),
        ("False", "ApiNotServed")
    );
    assert!(
        scheduling
            .message
            .starts_with("kueue.x-k8s.io/v1beta2 is not served"),
        "{}",
        scheduling.message
    );
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(condition(&status, "Valid").status, "True");
}

#[test]
fn conditions_keep_their_transition_time_until_their_status_changes() {
    let mut cluster = small();
    let observed = Observed::new(simulate(&cluster.spec), at("2026-12-01T10:00:00Z")).unwrap();
    let first = status(&cluster, &plan(&cluster, &observed).unwrap(), &observed);
    assert_eq!(condition(&first, "Progressing").status, "True");
    cluster.status = Some(first);
    // Later, still progressing: the time stays. Valid stayed True: its time stays too.
    let later = Observed::new(simulate(&cluster.spec), at("2026-12-01T10:05:00Z")).unwrap();
    let second = status(&cluster, &plan(&cluster, &later).unwrap(), &later);
    assert_eq!(
        condition(&second, "Progressing").last_transition_time.0,
        at("2026-12-01T10:00:00Z")
    );
    assert_eq!(
        condition(&second, "Valid").last_transition_time.0,
        at("2026-12-01T10:00:00Z")
    );
}

#[test]
fn an_invalid_spec_says_why_in_the_validate_text_and_is_not_ready() {
    let mut cluster = small();
    cluster.spec.site.power_budget_mw = 0.01;
    let observed = Observed::new(simulate(&cluster.spec), at("2026-12-01T10:00:00Z")).unwrap();
    let planned = plan(&cluster, &observed).unwrap();
    assert!(
        planned.rollout.writes.is_empty() && planned.manifests.is_empty(),
        "invalid specs change nothing"
    );
    let status = status(&cluster, &planned, &observed);
    let valid = condition(&status, "Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "SpecInvalid")
    );
    assert!(
        valid
            .message
            .starts_with("error: spec.site.powerBudgetMW: facility load"),
        "{}",
        valid.message
    );
    assert!(
        valid.message.contains("fix: raise spec.site.powerBudgetMW"),
        "{}",
        valid.message
    );
    assert_eq!(condition(&status, "PowerWithinBudget").status, "False");
    assert_eq!(condition(&status, "Ready").reason, "SpecInvalid");
}
