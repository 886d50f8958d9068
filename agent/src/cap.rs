//! What to do with the GPUs for the label a node carries, and what to report: pure, so the
//! arithmetic is tested without GPUs or a cluster.

use kelvin_core::constants::POWER_CAP_LABEL;

/// One GPU's power limits, in watts (NVML reports milliwatts; the backend converts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuLimits {
    /// Index on the node.
    pub index: u32,
    /// The lowest limit the GPU accepts.
    pub min_watts: u32,
    /// The highest limit the GPU accepts.
    pub max_watts: u32,
    /// The limit it boots with.
    pub default_watts: u32,
    /// The limit in force now.
    pub current_watts: u32,
}

/// One change to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetLimit {
    /// GPU index.
    pub gpu: u32,
    /// New limit, watts.
    pub watts: u32,
}

/// What the node should be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A cap is in force on every GPU: `kelvin.dev/gpu-power-cap-applied=<watts>` (the highest
    /// per-GPU limit set, which equals the request unless a GPU's own limits clamped it).
    Applied {
        /// Watts.
        watts: u32,
        /// For people: what was done.
        message: String,
    },
    /// No cap asked for: every GPU at its default, nothing reported.
    Default,
    /// The cap could not be applied: the label carries the reason (a label value), the
    /// annotation the message.
    Failed {
        /// `invalid-cap`, `nvml-unavailable`, `set-failed`.
        reason: &'static str,
        /// For people.
        message: String,
    },
}

/// The decision for one node: the limits to set and what to report once they are set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Limits to change (GPUs already at their target are left alone).
    pub set: Vec<SetLimit>,
    /// The report after `set` succeeded.
    pub report: Report,
}

/// Reads the requested cap from the node's labels: `Ok(None)` when there is none.
pub fn requested(
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Option<u32>, String> {
    match labels.get(POWER_CAP_LABEL) {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(watts) if watts > 0 => Ok(Some(watts)),
            _ => Err(format!(
                "{POWER_CAP_LABEL}={text:?} is not a whole number of watts above 0"
            )),
        },
    }
}

/// What to do for `request` on `gpus`: every GPU to the request clamped into its own
/// [min, max] (never outside them), or back to its default when there is no request.
pub fn decide(request: Option<u32>, gpus: &[GpuLimits]) -> Decision {
    let Some(request) = request else {
        return Decision {
            set: gpus
                .iter()
                .filter(|g| g.current_watts != g.default_watts)
                .map(|g| SetLimit {
                    gpu: g.index,
                    watts: g.default_watts,
                })
                .collect(),
            report: Report::Default,
        };
    };
    let targets: Vec<(u32, u32, bool)> = gpus
        .iter()
        .map(|g| {
            let target = request.clamp(g.min_watts, g.max_watts.max(g.min_watts));
            (g.index, target, target != request)
        })
        .collect();
    let set = targets
        .iter()
        .zip(gpus)
        .filter(|((_, target, _), g)| g.current_watts != *target)
        .map(|((gpu, watts, _), _)| SetLimit {
            gpu: *gpu,
            watts: *watts,
        })
        .collect();
    let highest = targets.iter().map(|(_, t, _)| *t).max().unwrap_or(request);
    let clamped = targets.iter().filter(|(_, _, c)| *c).count();
    let message = if clamped == 0 {
        format!("{} GPUs limited to {request} W", gpus.len())
    } else {
        format!(
            "{} GPUs limited to {request} W asked; {clamped} clamped to their own limits (highest set: {highest} W)",
            gpus.len()
        )
    };
    Decision {
        set,
        report: Report::Applied {
            watts: highest,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An H100 SXM5: 200-700 W, 700 W by default (NVIDIA H100 datasheet, `nvidia-smi -q -d POWER`).
    fn h100(index: u32, current: u32) -> GpuLimits {
        GpuLimits {
            index,
            min_watts: 200,
            max_watts: 700,
            default_watts: 700,
            current_watts: current,
        }
    }

    #[test]
    fn a_cap_is_set_on_every_gpu_not_at_it_yet() {
        let gpus = [h100(0, 700), h100(1, 450), h100(2, 700)];
        let decision = decide(Some(450), &gpus);
        assert_eq!(
            decision.set,
            [
                SetLimit { gpu: 0, watts: 450 },
                SetLimit { gpu: 2, watts: 450 }
            ]
        );
        assert_eq!(
            decision.report,
            Report::Applied {
                watts: 450,
                message: "3 GPUs limited to 450 W".into()
            }
        );
    }

    #[test]
    fn a_cap_outside_the_gpus_limits_is_clamped_and_reported_as_set() {
        // 150 W asked, below the H100's 200 W floor: 200 W is set and reported, so the
        // operator sees the request not met (capApplied counts nodes reporting the request).
        let decision = decide(Some(150), &[h100(0, 700)]);
        assert_eq!(decision.set, [SetLimit { gpu: 0, watts: 200 }]);
        assert!(matches!(
            decision.report,
            Report::Applied { watts: 200, .. }
        ));
        let decision = decide(Some(900), &[h100(0, 700)]);
        assert!(decision.set.is_empty(), "700 W is in force already");
        assert!(matches!(
            decision.report,
            Report::Applied { watts: 700, .. }
        ));
    }

    #[test]
    fn no_cap_restores_the_defaults() {
        let decision = decide(None, &[h100(0, 450), h100(1, 700)]);
        assert_eq!(decision.set, [SetLimit { gpu: 0, watts: 700 }]);
        assert_eq!(decision.report, Report::Default);
    }

    #[test]
    fn the_label_must_be_whole_watts() {
        let labels = |v: &str| BTreeMap::from([(POWER_CAP_LABEL.to_owned(), v.to_owned())]);
        assert_eq!(requested(&labels("450")), Ok(Some(450)));
        assert_eq!(requested(&BTreeMap::new()), Ok(None));
        for bad in ["0", "-1", "450W", "4.5e2", ""] {
            assert!(requested(&labels(bad)).is_err(), "{bad}");
        }
    }
}
