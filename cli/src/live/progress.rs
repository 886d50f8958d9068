//! Waiting for the operator: one progress bar per pool on a terminal (indicatif, on stderr),
//! plain lines on stdout otherwise (one per pool whenever its figures move), until the
//! GpuCluster is Ready, stops short of it for a reason waiting will not fix, or time runs out.

use std::{collections::BTreeMap, io::IsTerminal, time::Duration};

use anyhow::{Result, anyhow};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kelvin_crds::v1alpha1::PoolStatus;

use super::{
    cluster::{self, condition},
    connect::Live,
};
use crate::console::Console;

/// How often the GpuCluster's status is read.
const POLL: Duration = Duration::from_millis(500);

/// Ready reasons that settle by themselves (pods starting, the rollout running).
const SETTLING: [&str; 2] = ["Progressing", "DevicePluginsNotReady"];

fn pool_line(pool: &PoolStatus) -> String {
    format!(
        "{}/{} nodes labelled, {} ready, {} in transition, device plugin {}/{}",
        pool.labelled_nodes,
        pool.matched_nodes,
        pool.ready_nodes,
        pool.in_transition,
        pool.device_plugin_ready,
        pool.device_plugin_desired
    )
}

enum Display {
    Bars {
        multi: MultiProgress,
        bars: BTreeMap<String, ProgressBar>,
    },
    Lines {
        last: BTreeMap<String, String>,
    },
}

impl Display {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Display::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: BTreeMap::new(),
            }
        } else {
            Display::Lines {
                last: BTreeMap::new(),
            }
        }
    }

    fn show(&mut self, name: &str, pools: &[PoolStatus], console: &mut Console) -> Result<()> {
        match self {
            Display::Bars { multi, bars } => {
                for pool in pools {
                    let bar = bars.entry(pool.name.clone()).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(pool.matched_nodes.max(1)));
                        let style = ProgressStyle::with_template(
                            "{prefix:>16} [{bar:30}] {pos}/{len} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                        bar.set_style(style);
                        bar.set_prefix(pool.name.clone());
                        bar
                    });
                    bar.set_length(pool.matched_nodes.max(1));
                    bar.set_position(pool.labelled_nodes);
                    bar.set_message(format!(
                        "labelled, {} in transition, device plugin {}/{}",
                        pool.in_transition, pool.device_plugin_ready, pool.device_plugin_desired
                    ));
                }
            }
            Display::Lines { last } => {
                for pool in pools {
                    let line = pool_line(pool);
                    if last.get(&pool.name) != Some(&line) {
                        console.println(&format!("{name}: {}: {line}", pool.name))?;
                        last.insert(pool.name.clone(), line);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let Display::Bars { bars, .. } = self {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}

/// Waits until GpuCluster `name` at `generation` (or later) is Ready.
pub async fn wait_ready(
    live: &Live,
    name: &str,
    generation: i64,
    timeout: Duration,
    console: &mut Console,
) -> Result<()> {
    let start = tokio::time::Instant::now();
    let mut display = Display::new();
    let mut said_waiting = false;
    let result = loop {
        let current = cluster::get(live, name)
            .await?
            .ok_or_else(|| anyhow!("GpuCluster {name} was deleted while Kelvin waited for it"))?;
        let seen = current
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or_default();
        if seen >= generation {
            let pools = current
                .status
                .as_ref()
                .map(|s| s.pools.clone())
                .unwrap_or_default();
            display.show(name, &pools, console)?;
            if let Some(valid) = condition(&current, "Valid").filter(|c| c.status == "False") {
                break Err(anyhow!(
                    "the operator finds GpuCluster {name} invalid: {}\n  fix: correct the spec (kelvin validate -f …) and apply again",
                    valid.message
                ));
            }
            let ready = condition(&current, "Ready");
            if ready.is_some_and(|c| c.status == "True") {
                break Ok(());
            }
            let progressing =
                condition(&current, "Progressing").is_some_and(|c| c.status == "True");
            if let Some(ready) =
                ready.filter(|c| !progressing && !SETTLING.contains(&c.reason.as_str()))
            {
                let stuck: Vec<String> = current
                    .status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .filter(|c| match c.type_.as_str() {
                        "NodeConflicts" | "Degraded" | "Progressing" => false,
                        "Ready" => false,
                        _ => c.status == "False",
                    })
                    .map(|c| format!("{}=False ({}): {}", c.type_, c.reason, c.message))
                    .collect();
                break Err(anyhow!(
                    "GpuCluster {name} converged but is not Ready ({}): {}\n  fix: what the conditions name; kelvin status {name} shows them all",
                    ready.reason,
                    if stuck.is_empty() {
                        ready.message.clone()
                    } else {
                        stuck.join("; ")
                    }
                ));
            }
        } else if !said_waiting {
            console.println(&format!(
                "Waiting for the operator to act on generation {generation} of GpuCluster {name}…"
            ))?;
            console.flush()?;
            said_waiting = true;
        }
        if start.elapsed() > timeout {
            let reason = condition(&current, "Ready")
                .map(|c| format!("Ready={} ({}): {}", c.status, c.reason, c.message))
                .unwrap_or_else(|| "no status yet".to_owned());
            break Err(anyhow!(
                "timed out after {} waiting for GpuCluster {name} to be Ready: {reason}\n  fix: kelvin status {name} shows where it stands; wait longer with --timeout",
                humanize(timeout)
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    display.finish();
    result
}

/// `90s` -> "1m30s".
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// A duration as `--timeout` takes it: `90s`, `10m`, `1h30m`, `500ms`; `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?}: expected a number, e.g. 90s, 10m, 1h30m"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            "" => {
                return Err(format!(
                    "{text:?}: a unit is needed (ms, s, m, h), e.g. {number}s"
                ));
            }
            other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h)")),
        };
        total += part;
        rest = &rest[unit..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_and_helm_take_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err_and(|e| e.contains("unit")));
        assert!(parse_duration("10d").is_err());
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn a_pool_line_says_every_figure() {
        let pool = PoolStatus {
            name: "a".into(),
            matched_nodes: 4,
            labelled_nodes: 2,
            ready_nodes: 4,
            in_transition: 1,
            device_plugin_desired: 4,
            device_plugin_ready: 3,
            ..PoolStatus::default()
        };
        assert_eq!(
            pool_line(&pool),
            "2/4 nodes labelled, 4 ready, 1 in transition, device plugin 3/4"
        );
    }
}
