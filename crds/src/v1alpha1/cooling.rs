use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cooling zone: a loop, a hall or a set of immersion tanks, with the heat it can reject.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.state != 'Degraded' || has(self.degradedCapacityKW)")
        .message("degradedCapacityKW is required when state is Degraded: set the heat the zone still rejects")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.degradedCapacityKW) || self.degradedCapacityKW <= self.capacityKW")
        .message("degradedCapacityKW must not exceed capacityKW")
        .reason(Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoolingZone {
    /// Zone name, a DNS label. Nodes in the zone get the label `kelvin.dev/cooling-zone=<name>`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// How the zone rejects heat.
    pub cooling: CoolingKind,

    /// Heat the zone rejects when healthy, in kilowatts. All IT power becomes heat.
    #[serde(rename = "capacityKW")]
    #[schemars(range(min = 0.0, max = 10000000.0))]
    pub capacity_kw: f64,

    /// Operating state. Degraded and Maintenance are not errors: the plan caps GPU power or
    /// takes nodes out of service.
    #[serde(default)]
    pub state: ZoneState,

    /// Heat the zone still rejects while Degraded, in kilowatts. Required when state is Degraded.
    #[serde(
        rename = "degradedCapacityKW",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0.0, max = 10000000.0))]
    pub degraded_capacity_kw: Option<f64>,

    /// Selects the nodes in this zone. A node matched by two zones is left alone (never
    /// touched) and reported by name.
    pub node_selector: LabelSelector,
}

/// How a zone rejects heat.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoolingKind {
    /// Direct liquid cooling (cold plates).
    Liquid,
    /// Air cooling.
    Air,
    /// Immersion tanks.
    Immersion,
}

/// Operating state of a cooling zone.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ZoneState {
    /// Full capacity.
    #[default]
    Normal,
    /// Reduced capacity (degradedCapacityKW): GPUs are power-capped, nodes leave service if needed.
    Degraded,
    /// No cooling: every node in the zone leaves service.
    Maintenance,
}
