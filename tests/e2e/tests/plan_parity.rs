//! A live plan and an offline plan of the same spec agree: the nodes `kelvin plan --offline`
//! simulates, created on a real control plane (`tests/cluster.sh nodes from-spec`) and read
//! back as `kubectl get nodes -o json`, give the plan the simulated nodes give.
//!
//! A file of its own, so its control plane holds no other test's nodes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use kelvin_crds::node::NodeInfo;
use kelvin_e2e::{SpecNodes, cluster, repo_root, run, wait_for, workspace_binary};
use serde_json::Value;

/// The parts of a plan that come from the nodes it was made against.
const NODE_DERIVED: [&str; 5] = [
    "nodeChanges",
    "pools",
    "coolingZones",
    "fabrics",
    "nodesLeftAlone",
];

fn plan(kelvin: &Path, spec: &Path, inventory: Option<&Path>) -> Result<Value> {
    let mut cmd = Command::new(kelvin);
    cmd.args(["plan", "--offline", "-o", "json", "-f"])
        .arg(spec);
    if let Some(inventory) = inventory {
        cmd.arg("--inventory").arg(inventory);
    }
    let out = run(&mut cmd)?;
    serde_json::from_str(&out).with_context(|| format!("kelvin plan printed no JSON:\n{out}"))
}

#[tokio::test]
async fn offline_plan_and_plan_of_the_live_nodes_agree() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    let spec = repo_root().join("examples/small/cluster.yaml");
    // All of expectedNodes (8 here): the offline plan simulates every one.
    let set = SpecNodes::from_file(&spec, None)?;
    assert!(
        !set.nodes.is_empty(),
        "{} simulates no nodes",
        spec.display()
    );
    set.create(&client).await?;
    set.wait_ready(&client, Duration::from_secs(30))
        .await
        .with_context(|| c.describe())?;

    // Read back as a user would save an inventory. Wait until it is what was simulated: Ready,
    // and without the not-ready taint the node lifecycle controller may have put on a node
    // before kwok marked it Ready.
    let names: BTreeSet<&str> = set.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut simulated = set.nodes.clone();
    simulated.sort_by(|a, b| a.name.cmp(&b.name));
    let inventory = c.scratch().join("plan-parity-nodes.json");
    wait_for(
        "the live nodes to read back as the simulated ones",
        Duration::from_secs(30),
        || async {
            let mut dump: Value =
                serde_json::from_str(&run(c.kubectl().args(["get", "nodes", "-o", "json"]))?)?;
            // Only this set, should the cluster be a shared external one.
            if let Some(items) = dump["items"].as_array_mut() {
                items.retain(|n| {
                    n["metadata"]["name"]
                        .as_str()
                        .is_some_and(|name| names.contains(name))
                });
            }
            let text = serde_json::to_string(&dump)?;
            let mut live: Vec<NodeInfo> =
                kelvin_crds::load::load_inventory("nodes.json", text.as_bytes())
                    .map_err(|d| anyhow::anyhow!("the node dump is no inventory: {d:?}"))?;
            live.sort_by(|a, b| a.name.cmp(&b.name));
            if live != simulated {
                return Ok(None);
            }
            std::fs::write(&inventory, text)?;
            Ok(Some(()))
        },
    )
    .await?;

    let kelvin = workspace_binary("kelvin", "kelvin")?;
    let offline = plan(&kelvin, &spec, None)?;
    let live = plan(&kelvin, &spec, Some(&inventory))?;
    for key in NODE_DERIVED {
        assert_eq!(
            live[key], offline[key],
            "{key} of the plan against the live nodes differs from the offline plan's"
        );
    }
    // Not agreeing on nothing: every node gets Kelvin's labels, in every pool.
    let changed: Vec<u64> = offline["nodeChanges"]
        .as_array()
        .context("plan has no nodeChanges")?
        .iter()
        .map(|p| p["nodes"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(changed.len(), 2, "{}", offline["nodeChanges"]);
    assert_eq!(changed.iter().sum::<u64>(), set.nodes.len() as u64);
    let planned: u64 = offline["pools"]
        .as_array()
        .context("plan has no pools")?
        .iter()
        .map(|p| p["nodes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(planned, set.nodes.len() as u64, "{}", offline["pools"]);

    set.delete(&client).await?;
    assert_eq!(
        set.count_ready(&client).await?.0,
        0,
        "nodes left after delete"
    );
    Ok(())
}
