//! Human output: Terraform-style object lines, node changes counted per pool, the summary
//! line, then power, cooling and fabric tables. Colour only on a terminal (and not with NO_COLOR).

use std::{collections::BTreeMap, fmt::Write as _, io::IsTerminal};

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use kelvin_core::{
    desired::ObjectKey,
    plan::{Action, Plan},
};
use kelvin_crds::{
    diagnostics::{Diagnostic, Severity},
    v1alpha1::ZoneState,
};

fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub fn paint(text: &str, code: &str) -> String {
    if colour_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A diagnostic, with its severity coloured on a terminal.
pub fn paint_diagnostic(diagnostic: &Diagnostic) -> String {
    let text = diagnostic.to_string();
    let (word, code) = match diagnostic.severity {
        Severity::Error => ("error:", "1;31"),
        Severity::Warning => ("warning:", "1;33"),
    };
    match text.strip_prefix(word) {
        Some(rest) if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() => {
            format!("\x1b[{code}m{word}\x1b[0m{rest}")
        }
        _ => text,
    }
}

/// 8750 -> "8,750".
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `value` and `noun`, plural unless one: "1 node", "8,750 nodes".
pub fn count(value: u64, noun: &str) -> String {
    let plural = if value == 1 { "" } else { "s" };
    format!("{} {noun}{plural}", thousands(value))
}

pub fn number(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(headers.iter().map(|h| Cell::new(*h)));
    table
}

pub fn right(table: &mut Table, from: usize) {
    for index in from..table.column_count() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// What a live plan adds to the text of a plan (empty offline).
#[derive(Default)]
pub struct Extras {
    /// Sections after the heading: the GpuCluster and CRD themselves, drift.
    pub preface: String,
    /// Changed fields of changed objects, shown under each.
    pub fields: BTreeMap<ObjectKey, Vec<String>>,
    /// Per pool, a few of the nodes written.
    pub examples: BTreeMap<String, Vec<String>>,
    /// The blast-radius line, after the summary line.
    pub blast: Option<String>,
    /// IT MW of the live nodes matched, beside the design figure.
    pub live_it_mw: Option<f64>,
}

/// The whole plan as text.
pub fn human_plan(plan: &Plan, node_source: &str) -> String {
    human_plan_with(plan, node_source, &Extras::default())
}

/// Paints `symbol` in Terraform's colour for it.
pub fn symbol(action: Action) -> String {
    let (symbol, code) = match action {
        Action::Add => ("+", "32"),
        Action::Change => ("~", "33"),
        Action::Destroy => ("-", "31"),
    };
    paint(symbol, code)
}

/// The whole plan as text, with what a live plan adds.
pub fn human_plan_with(plan: &Plan, node_source: &str, extras: &Extras) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "GpuCluster {} — planned against {node_source}.\n",
        plan.cluster
    );
    out.push_str(&extras.preface);
    if !plan.valid {
        let _ = writeln!(
            out,
            "The spec is invalid ({}, printed above): nothing would change.\n",
            count(plan.errors.len() as u64, "error")
        );
    }
    let node_pools: Vec<_> = plan
        .node_changes
        .iter()
        .filter(|p| p.nodes > 0 || p.deferred > 0)
        .collect();
    if !node_pools.is_empty() {
        let _ = writeln!(out, "Node changes:");
        for pool in node_pools {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                paint("~", "33"),
                pool.pool,
                count(pool.nodes, "node")
            );
            if let Some(names) = extras.examples.get(&pool.pool).filter(|_| pool.nodes > 0) {
                let more = pool.nodes.saturating_sub(names.len() as u64);
                let _ = writeln!(
                    out,
                    "      e.g. {}{}",
                    names.join(", "),
                    if more > 0 {
                        format!(" and {} more", thousands(more))
                    } else {
                        String::new()
                    }
                );
            }
            for (item, count) in &pool.items {
                let _ = writeln!(out, "      {:<64} {:>8}", item, thousands(*count));
            }
            if pool.deferred > 0 {
                let _ = writeln!(
                    out,
                    "      {} for a later step before their disruptive changes (maxUnavailable)",
                    if pool.deferred == 1 {
                        "1 node waits".to_owned()
                    } else {
                        format!("{} nodes wait", thousands(pool.deferred))
                    }
                );
            }
        }
        out.push('\n');
    }
    if !plan.nodes_left_alone.is_empty() {
        let _ = writeln!(
            out,
            "Nodes left alone (matched by two pools or two cooling zones):"
        );
        for conflict in &plan.nodes_left_alone {
            let _ = writeln!(out, "  {conflict}");
        }
        out.push('\n');
    }
    if !plan.objects.is_empty() {
        let _ = writeln!(out, "Objects:");
        for change in &plan.objects {
            let _ = writeln!(out, "  {} {}", symbol(change.action), change.key);
            for line in extras.fields.get(&change.key).into_iter().flatten() {
                let _ = writeln!(out, "      {line}");
            }
        }
        out.push('\n');
    }
    let summary = &plan.summary;
    let _ = writeln!(
        out,
        "{} {} to add, {} to change, {} to destroy.\n",
        paint("Plan:", "1"),
        thousands(summary.add),
        thousands(summary.change),
        thousands(summary.destroy)
    );
    if let Some(blast) = &extras.blast {
        let _ = writeln!(out, "{blast}\n");
    }
    out.push_str(&power_table(plan, extras.live_it_mw));
    out.push_str(&cooling_table(plan));
    out.push_str(&fabric_table(plan));
    out.push_str(&pool_table(plan));
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "Warnings:");
        for warning in &plan.warnings {
            let _ = writeln!(out, "  {warning}");
        }
        out.push('\n');
    }
    out
}

/// Where a document comes in the files given: (file, document), the order plans are printed in.
pub type Order = (usize, usize);

/// The JSON plan of a run (docs/cli.md): one entry per document, planned or not, in the order
/// of the files and documents; one object for one document, an array for several. What the
/// files hold decides the shape, never what was valid. The sort is stable: one file named twice
/// keeps its entries in the order read.
pub fn json_plans<T: serde::Serialize>(mut entries: Vec<(Order, T)>) -> serde_json::Result<String> {
    entries.sort_by_key(|(order, _)| *order);
    match entries.as_slice() {
        [(_, only)] => serde_json::to_string_pretty(only),
        _ => {
            let documents: Vec<&T> = entries.iter().map(|(_, entry)| entry).collect();
            serde_json::to_string_pretty(&documents)
        }
    }
}

/// Megawatts, with kilowatt precision for small sites.
pub fn mw(value: f64) -> String {
    number(value, if value.abs() < 10.0 { 3 } else { 2 })
}

fn power_table(plan: &Plan, live_it_mw: Option<f64>) -> String {
    let power = &plan.power;
    let mut table = table(&["POWER", "IT MW", "FACILITY MW", "BUDGET MW", "HEADROOM MW"]);
    let design = if live_it_mw.is_some() {
        "site (design: expectedNodes)"
    } else {
        "site"
    };
    table.add_row(vec![
        design.to_owned(),
        mw(power.it_mw),
        mw(power.facility_mw),
        mw(power.budget_mw),
        mw(power.headroom_mw),
    ]);
    if let Some(it) = live_it_mw {
        // The facility factor is the design's: facility = IT x PUE.
        let pue = if power.it_mw > 0.0 {
            power.facility_mw / power.it_mw
        } else {
            1.0
        };
        table.add_row(vec![
            "live nodes matched".to_owned(),
            mw(it),
            mw(it * pue),
            mw(power.budget_mw),
            mw(power.budget_mw - it * pue),
        ]);
    }
    right(&mut table, 1);
    format!("{table}\n\n")
}

fn cooling_table(plan: &Plan) -> String {
    if plan.cooling_zones.is_empty() {
        return String::new();
    }
    let mut table = table(&[
        "COOLING ZONE",
        "STATE",
        "NODES",
        "HEAT kW",
        "CAPACITY kW",
        "HEADROOM kW",
        "GPU CAP W",
        "OUT OF SERVICE",
        "DEFICIT kW",
    ]);
    for (zone, leaving_now) in plan.cooling_zones.iter().zip(&plan.leaving_now) {
        let state = match zone.state {
            ZoneState::Normal => "Normal",
            ZoneState::Degraded => "Degraded",
            ZoneState::Maintenance => "Maintenance",
        };
        let out_of_service = if zone.nodes_must_leave > 0 {
            format!(
                "{} of {} ({} now)",
                thousands(zone.out_of_service),
                thousands(zone.nodes_must_leave),
                thousands(*leaving_now)
            )
        } else {
            "-".to_owned()
        };
        table.add_row(vec![
            zone.name.clone(),
            state.to_owned(),
            thousands(zone.nodes),
            number(zone.heat_load_kw, 1),
            number(zone.capacity_kw, 1),
            number(zone.headroom_kw, 1),
            zone.gpu_power_cap_watts
                .map_or("-".to_owned(), |w| w.to_string()),
            out_of_service,
            if zone.deficit_kw > 0.0 {
                number(zone.deficit_kw, 1)
            } else {
                "-".to_owned()
            },
        ]);
    }
    right(&mut table, 2);
    format!("{table}\n\n")
}

fn fabric_table(plan: &Plan) -> String {
    if plan.fabrics.is_empty() {
        return String::new();
    }
    let mut table = table(&[
        "FABRIC",
        "NODES",
        "ENDPOINTS",
        "TIERS",
        "LEAF SW",
        "SPINE SW",
        "CORE SW",
        "NODE-LEAF",
        "LEAF-SPINE",
        "SPINE-CORE",
        "NVLINK DOMAINS",
    ]);
    for fabric in &plan.fabrics {
        table.add_row(vec![
            fabric.name.clone(),
            thousands(fabric.nodes),
            thousands(fabric.endpoints),
            fabric.tiers.to_string(),
            thousands(fabric.switches.leaf),
            thousands(fabric.switches.spine),
            thousands(fabric.switches.core),
            thousands(fabric.cables.node_leaf),
            thousands(fabric.cables.leaf_spine),
            thousands(fabric.cables.spine_core),
            thousands(fabric.nvlink_domains),
        ]);
    }
    right(&mut table, 1);
    format!("{table}\n\n")
}

fn pool_table(plan: &Plan) -> String {
    let mut table = table(&[
        "POOL",
        "NODES",
        "EXPECTED",
        "GPUS",
        "ALLOCATABLE",
        "MAX UNAVAILABLE",
    ]);
    for pool in &plan.pools {
        table.add_row(vec![
            pool.name.clone(),
            thousands(pool.nodes),
            thousands(pool.expected_nodes),
            thousands(pool.gpus),
            thousands(pool.allocatable_gpus),
            thousands(pool.max_unavailable),
        ]);
    }
    right(&mut table, 1);
    format!("{table}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(text: serde_json::Result<String>) -> Value {
        serde_json::from_str(&text.unwrap()).unwrap()
    }

    #[test]
    fn one_document_is_one_object_and_several_an_array_in_file_order() {
        assert_eq!(
            parsed(json_plans(vec![((0, 0), json!({"cluster": "a"}))])),
            json!({"cluster": "a"})
        );
        // Planned and rejected documents come from two lists: the order is the files'.
        let entries = vec![
            ((1, 0), json!({"cluster": "c"})),
            ((0, 1), json!({"cluster": "b", "valid": false})),
            ((0, 0), json!({"cluster": "a"})),
        ];
        assert_eq!(
            parsed(json_plans(entries)),
            json!([{"cluster": "a"}, {"cluster": "b", "valid": false}, {"cluster": "c"}])
        );
        assert_eq!(parsed(json_plans(Vec::<(Order, Value)>::new())), json!([]));
    }
}
