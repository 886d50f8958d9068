//! A live plan for people (the offline plan's text with the live sections) and as JSON
//! (the offline plan's document plus a `live` object, docs/cli.md).

use std::fmt::Write as _;

use kelvin_core::plan::Plan;
use serde_json::{Value, json};

use super::{
    cluster::{CrdChange, FACILITY_MANAGER, SpecChange},
    connect::Live,
    plan::LivePlan,
};
use crate::output::{self, Extras, count, paint, thousands};

/// The message for a spec that would overwrite a facility's zone state.
pub fn refused_message(name: &str, fields: &[String]) -> String {
    format!(
        "applying GpuCluster {name} would overwrite what {FACILITY_MANAGER} reported (`kelvin zone set`): {}\n  fix: write the reported state into the spec file, or report the zone healthy first: kelvin zone set ZONE --state Normal",
        fields.join(", ")
    )
}

fn preface(plan: &LivePlan) -> String {
    let mut out = String::new();
    let name = plan.spec.name();
    let crd = match plan.crd {
        CrdChange::Create => Some("+"),
        CrdChange::Update => Some("~"),
        CrdChange::Same => None,
    };
    let spec = match &plan.spec_change {
        SpecChange::Create => Some(("+".to_owned(), Vec::new())),
        SpecChange::Update(fields) => Some(("~".to_owned(), fields.clone())),
        SpecChange::Refused(fields) => Some((
            "!".to_owned(),
            vec![format!(
                "refused: {} owned by {FACILITY_MANAGER} (printed above)",
                fields.join(", ")
            )],
        )),
        SpecChange::Same => None,
    };
    if crd.is_some() || spec.is_some() {
        let _ = writeln!(out, "Kelvin's API (written by kelvin apply):");
        if let Some(symbol) = crd {
            let _ = writeln!(
                out,
                "  {} CustomResourceDefinition/gpuclusters.kelvin.dev",
                paint(symbol, if symbol == "+" { "32" } else { "33" })
            );
        }
        if let Some((symbol, fields)) = spec {
            let _ = writeln!(
                out,
                "  {} GpuCluster/{name}",
                paint(&symbol, if symbol == "+" { "32" } else { "33" })
            );
            for line in fields {
                let _ = writeln!(out, "      {line}");
            }
        }
        out.push('\n');
    }
    let drift = &plan.drift;
    if let Some(reason) = &drift.not_judged {
        let _ = writeln!(out, "Drift: not judged: {reason}.\n");
    } else if !drift.objects.is_empty() || !drift.nodes.is_empty() {
        let _ = writeln!(
            out,
            "Drift (changed outside Kelvin since the operator applied GpuCluster {name}; applying puts it back):"
        );
        for (change, fields) in &drift.objects {
            let what = match change.action {
                kelvin_core::plan::Action::Add => " (deleted outside Kelvin)",
                kelvin_core::plan::Action::Destroy => " (no longer asked for, still there)",
                kelvin_core::plan::Action::Change => "",
            };
            let _ = writeln!(
                out,
                "  {} {}{what}",
                output::symbol(change.action),
                change.key
            );
            for line in fields {
                let _ = writeln!(out, "      {line}");
            }
        }
        for (pool, nodes) in &drift.nodes {
            let _ = writeln!(
                out,
                "  {} {pool}: {} with Kelvin's labels or taints changed",
                paint("~", "33"),
                count(*nodes, "node")
            );
        }
        out.push('\n');
    }
    out
}

fn blast(plan: &LivePlan) -> String {
    let blast = &plan.blast;
    if blast.unschedulable == 0 {
        return "Blast radius: no node becomes unschedulable.".to_owned();
    }
    format!(
        "Blast radius: {} become{} unschedulable to pods without a toleration ({}, {} MW IT), {} of them taken out of service.",
        count(blast.unschedulable, "node"),
        if blast.unschedulable == 1 { "s" } else { "" },
        count(blast.gpus, "GPU"),
        output::mw(blast.it_mw),
        thousands(blast.leave_service)
    )
}

/// The text of a live plan.
pub fn text(plan: &LivePlan, live: &Live) -> String {
    let extras = Extras {
        preface: preface(plan),
        fields: plan.fields.clone(),
        examples: plan.examples.clone(),
        blast: Some(blast(plan)),
        live_it_mw: Some(plan.live_it_mw),
    };
    let source = format!(
        "{} of cluster {}",
        count(plan.observed.nodes().len() as u64, "node"),
        live.describe()
    );
    let mut extras = extras;
    if !plan.has_changes() && plan.planned.plan.valid {
        extras
            .preface
            .push_str("No changes. The cluster matches the spec.\n\n");
    }
    output::human_plan_with(&plan.planned.plan, &source, &extras)
}

/// The JSON entry of a document that was not planned (it failed to load): the offline entry,
/// with `live: null`, as nothing was observed or dry-run for it.
pub fn rejected_json(plan: &Plan) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("live".into(), Value::Null);
    }
    value
}

/// The JSON of a live plan: the offline plan's fields and `live`.
pub fn json(plan: &LivePlan, live: &Live) -> Value {
    let mut value = serde_json::to_value(&plan.planned.plan).unwrap_or(Value::Null);
    let spec = match &plan.spec_change {
        SpecChange::Create => json!({"action": "add"}),
        SpecChange::Update(fields) => json!({"action": "change", "fields": fields}),
        SpecChange::Same => json!({"action": "none"}),
        SpecChange::Refused(fields) => json!({"action": "refused", "fields": fields}),
    };
    let crd = match plan.crd {
        CrdChange::Create => "add",
        CrdChange::Update => "change",
        CrdChange::Same => "none",
    };
    let fields: serde_json::Map<String, Value> = plan
        .fields
        .iter()
        .map(|(key, lines)| (key.to_string(), json!(lines)))
        .collect();
    let drift_objects: Vec<Value> = plan
        .drift
        .objects
        .iter()
        .map(|(change, lines)| {
            let mut object = serde_json::to_value(change).unwrap_or(Value::Null);
            object["fields"] = json!(lines);
            object
        })
        .collect();
    let drift_nodes: Vec<Value> = plan
        .drift
        .nodes
        .iter()
        .map(|(pool, nodes)| json!({"pool": pool, "nodes": nodes}))
        .collect();
    let live_section = json!({
        "server": live.server,
        "context": live.context,
        "nodes": plan.observed.nodes().len(),
        "gpuCluster": spec,
        "crd": crd,
        "objectFields": fields,
        "drift": {
            "judged": plan.drift.not_judged.is_none(),
            "reason": plan.drift.not_judged,
            "objects": drift_objects,
            "nodes": drift_nodes,
        },
        "blastRadius": {
            "unschedulableNodes": plan.blast.unschedulable,
            "outOfServiceNodes": plan.blast.leave_service,
            "gpus": plan.blast.gpus,
            "itMW": plan.blast.it_mw,
        },
        "exampleNodes": plan.examples,
        "liveItMW": plan.live_it_mw,
        "changes": plan.has_changes(),
    });
    if let Some(map) = value.as_object_mut() {
        map.insert("live".into(), live_section);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use kelvin_crds::diagnostics::Diagnostic;

    #[test]
    fn a_document_that_did_not_load_is_the_offline_entry_with_live_null() {
        let plan = Plan::rejected(
            "broken",
            vec![Diagnostic::error("spec.site.pue", "too high")],
        );
        let entry = rejected_json(&plan);
        assert_eq!(entry["live"], Value::Null);
        let mut offline = serde_json::to_value(&plan).unwrap();
        offline["live"] = Value::Null;
        assert_eq!(entry, offline);
        assert_eq!(entry["valid"], false);
        assert_eq!(entry["errors"][0]["path"], "spec.site.pue");
    }
}
