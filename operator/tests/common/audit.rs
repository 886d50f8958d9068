//! The API server's audit log (`tests/cluster.sh up --audit`): every request a ServiceAccount
//! outside kube-system made, one JSON event per line, level Metadata. What the operator did,
//! measured from outside it.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// One API call as the audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// When the API server received it.
    pub at: Timestamp,
    pub group: String,
    /// `resource` or `resource/subresource`, as RBAC names it.
    pub resource: String,
    pub verb: String,
    pub code: u16,
    /// The request URI (query included: `?watch=true&resourceVersion=...`, `?limit=500`).
    pub uri: String,
}

/// The calls `user` made, from the audit log (one per request: its last stage), in the order
/// the API server received them.
pub fn calls_of(log: &Path, user: &str) -> Result<Vec<Call>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut by_id: BTreeMap<String, Call> = BTreeMap::new();
    for line in text.lines() {
        let event: Value = serde_json::from_str(line)?;
        if event["user"]["username"] != user {
            continue;
        }
        let Some(object) = event["objectRef"].as_object() else {
            continue; // discovery (/api, /apis): a non-resource URL every user may read
        };
        let field = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
        let resource = match field("subresource") {
            "" => field("resource").to_owned(),
            sub => format!("{}/{sub}", field("resource")),
        };
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let call = Call {
            at: event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(Timestamp::UNIX_EPOCH),
            group: field("apiGroup").to_owned(),
            resource,
            verb: text(&event["verb"]),
            code: event["responseStatus"]["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
            uri: text(&event["requestURI"]),
        };
        by_id.insert(text(&event["auditID"]), call);
    }
    let mut calls: Vec<Call> = by_id.into_values().collect();
    calls.sort();
    Ok(calls)
}

/// The ServiceAccount `namespace/name` as the API server names its user.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}
