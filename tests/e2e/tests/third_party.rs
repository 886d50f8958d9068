//! Kelvin's Kueue and Volcano objects against those projects' own CRDs (Kueue's from the
//! `sigs.k8s.io/kueue` module, Volcano's HyperNode generated from `volcano.sh/apis` with
//! controller-gen; see `kelvin_e2e::third_party`), created for real in the real API server.
//!
//! The objects are the ones `kelvin render` writes: `kelvin_core::plan::plan` of each spec
//! against the nodes `observed::simulate` makes of it (or a golden case's inventory), with
//! both APIs served. They are created with `fieldValidation=Strict`, so a field the project's
//! schema does not know is an error instead of being pruned silently, and what the API server
//! stored must still hold every field Kelvin sent. Then each is server-side applied (forced),
//! as the operator writes it, which must be accepted too.
//!
//! The cases create cluster-scoped objects of fixed names (a ClusterQueue per tenant, a
//! HyperNode per leaf group), so each test runs its cases one after another and deletes each
//! case's objects before the next.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kelvin_core::desired::{Desired, KindInfo, Manifest};
use kelvin_core::observed::{Observed, ServedApis, simulate};
use kelvin_core::plan::plan;
use kelvin_crds::load;
use kelvin_crds::v1alpha1::TopologyAwareScheduling;
use kelvin_e2e::third_party::{KUEUE_GROUP, VOLCANO_TOPOLOGY_GROUP, install_third_party_crds};
use kelvin_e2e::{cluster, repo_root, unique_name};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::core::{Request, Resource};
use kube::{Api, Client};
use serde_json::{Value, json};

/// One spec to plan, with the nodes to plan it against and the scheduler to plan it for.
struct Case {
    spec: PathBuf,
    /// Nodes to plan against; `None`: the simulated ones (what `kelvin render` uses).
    inventory: Option<PathBuf>,
    /// Overrides `spec.scheduling.topologyAwareScheduling`.
    scheduler: Option<TopologyAwareScheduling>,
}

impl Case {
    fn new(spec: &str) -> Self {
        Self {
            spec: repo_root().join(spec),
            inventory: None,
            scheduler: None,
        }
    }

    fn with(mut self, scheduler: TopologyAwareScheduling) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    fn name(&self) -> String {
        let mut name = self.spec.strip_prefix(repo_root()).map_or_else(
            |_| self.spec.display().to_string(),
            |p| p.display().to_string(),
        );
        if let Some(scheduler) = self.scheduler {
            name.push_str(&format!(" (topologyAwareScheduling: {scheduler:?})"));
        }
        name
    }

    /// Kelvin's objects of API `group` for this case, in apply order.
    fn manifests(&self, group: &str) -> Result<Vec<Manifest>> {
        let bytes =
            std::fs::read(&self.spec).with_context(|| format!("reading {}", self.name()))?;
        let (mut clusters, diagnostics) =
            load::load_gpu_clusters(&self.spec.display().to_string(), &bytes);
        if !diagnostics.is_empty() {
            bail!("{} does not load: {diagnostics:?}", self.name());
        }
        let Some((mut cluster, _)) = clusters.drain(..).next() else {
            bail!("{} holds no GpuCluster", self.name());
        };
        if let Some(scheduler) = self.scheduler {
            cluster
                .spec
                .scheduling
                .as_mut()
                .with_context(|| format!("{} has no spec.scheduling", self.name()))?
                .topology_aware_scheduling = scheduler;
        }
        let nodes = match &self.inventory {
            Some(path) => {
                let bytes = std::fs::read(path)?;
                load::load_inventory(&path.display().to_string(), &bytes)
                    .map_err(|d| anyhow::anyhow!("{} is no inventory: {d:?}", path.display()))?
            }
            None => simulate(&cluster.spec),
        };
        let mut observed = Observed::new(nodes, "2026-12-01T10:00:00Z".parse()?)?;
        observed.apis = ServedApis {
            kueue: true,
            volcano: true,
        };
        let planned = plan(&cluster, &observed)?;
        if !planned.plan.valid {
            bail!("{} plans invalid: {:?}", self.name(), planned.plan.errors);
        }
        let prefix = format!("{group}/");
        Ok(planned
            .manifests
            .into_iter()
            .filter(|m| m.key.api_version.starts_with(&prefix))
            .collect())
    }
}

fn kind_info(manifest: &Manifest) -> Result<KindInfo> {
    Desired::kinds()
        .into_iter()
        .find(|k| k.api_version == manifest.key.api_version && k.kind == manifest.key.kind)
        .with_context(|| format!("{} is of no kind Kelvin writes", manifest.key))
}

fn api_resource(kind: &KindInfo) -> ApiResource {
    let version = kind
        .api_version
        .rsplit_once('/')
        .map_or(kind.api_version, |(_, v)| v);
    let gvk = GroupVersionKind::gvk(kind.group, version, kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, kind.plural)
}

fn api(client: &Client, kind: &KindInfo, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = api_resource(kind);
    match namespace {
        Some(ns) if kind.namespaced => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `body` (a POST, like `kubectl create`); with `strict`, under
/// `fieldValidation=Strict`, so unknown and duplicate fields are errors instead of being
/// dropped with a warning. Returns the object as the API server stored it.
async fn create(
    client: &Client,
    kind: &KindInfo,
    body: &Value,
    strict: bool,
) -> Result<Value, kube::Error> {
    let namespace = body["metadata"]["namespace"].as_str();
    let url = DynamicObject::url_path(&api_resource(kind), namespace.filter(|_| kind.namespaced));
    let params = PostParams {
        dry_run: false,
        field_manager: Some("kelvin-e2e".into()),
    };
    let bytes = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
    let mut request = Request::new(url)
        .create(&params, bytes)
        .map_err(kube::Error::BuildRequest)?;
    if strict {
        let uri = format!("{}&fieldValidation=Strict", request.uri());
        *request.uri_mut() = uri.parse().map_err(|e| {
            kube::Error::BuildRequest(kube::core::request::Error::Validation(format!("{e}")))
        })?;
    }
    client.request::<Value>(request).await
}

/// The fields of `sent` that `stored` lacks or holds otherwise, as paths (`.spec.tierName`).
/// Defaults the API server added are fine; a field it dropped or changed is not.
fn differences(sent: &Value, stored: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, stored) {
        (Value::Object(sent), Value::Object(stored)) => {
            for (key, value) in sent {
                let here = format!("{path}.{key}");
                match stored.get(key) {
                    Some(kept) => differences(value, kept, &here, out),
                    None => out.push(format!("{here} was dropped (sent {value})")),
                }
            }
        }
        (Value::Array(sent), Value::Array(stored)) if sent.len() == stored.len() => {
            for (i, (a, b)) in sent.iter().zip(stored).enumerate() {
                differences(a, b, &format!("{path}[{i}]"), out);
            }
        }
        // A quantity sent as a number may come back as a string, and the other way round.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n))
            if n.to_string() == *s => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: sent {a}, stored {b}")),
    }
}

/// The API server's whole answer to a refused request.
fn describe_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!(
            "{} {}: {}",
            status.code,
            status.reason,
            status.message.replace('\n', " ")
        ),
        other => format!("{other:#}"),
    }
}

/// Creates the namespaces `manifests` put objects into (Kelvin's own Namespace objects hold
/// the tenants'; here a bare namespace will do). Returns the ones this call created.
async fn ensure_namespaces(client: &Client, manifests: &[Manifest]) -> Result<BTreeSet<String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let wanted: BTreeSet<&str> = manifests
        .iter()
        .filter_map(|m| m.key.namespace.as_deref())
        .collect();
    let mut created = BTreeSet::new();
    for name in wanted {
        if api.get_opt(name).await?.is_some() {
            continue;
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {
                created.insert(name.to_owned());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("creating namespace {name}")),
        }
    }
    Ok(created)
}

/// The problems found with one object, and the object with its kind if it exists now.
type Checked<'m> = (Vec<String>, Option<(&'m Manifest, KindInfo)>);

/// One object strictly created, compared with what was stored, then server-side applied as
/// the operator writes it: the problems found, and the object if it exists now.
async fn check_one<'m>(
    client: &Client,
    case: &Case,
    manifest: &'m Manifest,
) -> Result<Checked<'m>> {
    let mut problems = Vec::new();
    let kind = kind_info(manifest)?;
    let mut exists = false;
    match create(client, &kind, &manifest.body, true).await {
        Ok(stored) => {
            exists = true;
            let mut lost = Vec::new();
            differences(&manifest.body, &stored, "", &mut lost);
            for field in lost {
                problems.push(format!("{}: {}: {field}", case.name(), manifest.key));
            }
        }
        Err(error) => problems.push(format!(
            "{}: {} refused: {}",
            case.name(),
            manifest.key,
            describe_error(&error)
        )),
    }
    // The operator's write: a forced server-side apply of the same body.
    let applied = api(client, &kind, manifest.key.namespace.as_deref())
        .patch(
            &manifest.key.name,
            &PatchParams::apply("kelvin-e2e").force(),
            &Patch::Apply(&manifest.body),
        )
        .await;
    match applied {
        Ok(_) => exists = true,
        Err(error) => problems.push(format!(
            "{}: {} refused by server-side apply: {}",
            case.name(),
            manifest.key,
            describe_error(&error)
        )),
    }
    Ok((problems, exists.then_some((manifest, kind))))
}

/// Creates every object of API `group` Kelvin writes for each case, strictly; deletes them
/// again after each case. Returns one line per object refused, or stored otherwise than sent.
async fn create_each_case(client: &Client, cases: &[Case], group: &str) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut namespaces = BTreeSet::new();
    for case in cases {
        let manifests = case.manifests(group)?;
        if manifests.is_empty() {
            bail!("{} has no {group} objects", case.name());
        }
        namespaces.extend(ensure_namespaces(client, &manifests).await?);
        // Sixteen at a time: the Cortex cases hold over a thousand objects.
        let outcomes: Vec<Checked<'_>> = futures::stream::iter(&manifests)
            .map(|manifest| check_one(client, case, manifest))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let mut created = Vec::new();
        for (found, object) in outcomes {
            problems.extend(found);
            created.extend(object);
        }
        eprintln!(
            "{}: {} of {} {group} objects created",
            case.name(),
            created.len(),
            manifests.len()
        );
        futures::stream::iter(created)
            .map(|(manifest, kind)| async move {
                api(client, &kind, manifest.key.namespace.as_deref())
                    .delete(&manifest.key.name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting {}", manifest.key))
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
    }
    let api: Api<Namespace> = Api::all(client.clone());
    for name in namespaces {
        api.delete(&name, &DeleteParams::default()).await?;
    }
    Ok(problems)
}

#[tokio::test]
async fn kelvins_kueue_objects_are_accepted_by_kueues_crds() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    install_third_party_crds(c, &client).await?;
    let cases = [
        Case::new("examples/small/cluster.yaml"),
        Case::new("examples/cortex/cluster.yaml"),
        Case::new("examples/cortex/phase2.yaml"),
    ];
    let problems = create_each_case(&client, &cases, KUEUE_GROUP).await?;
    assert!(
        problems.is_empty(),
        "Kueue's CRDs refused or changed Kelvin's objects:\n{}",
        problems.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn kelvins_hypernodes_are_accepted_by_volcanos_crd() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    install_third_party_crds(c, &client).await?;
    let volcano = TopologyAwareScheduling::Volcano;
    let cases = [
        Case::new("examples/small/cluster.yaml").with(volcano),
        Case::new("examples/cortex/cluster.yaml").with(volcano),
        Case::new("examples/cortex/phase2.yaml").with(volcano),
        Case {
            inventory: Some(
                repo_root().join("operator/core/tests/golden/volcano-nodelist/inventory.yaml"),
            ),
            ..Case::new("operator/core/tests/golden/volcano-nodelist/spec.yaml")
        },
    ];
    let problems = create_each_case(&client, &cases, VOLCANO_TOPOLOGY_GROUP).await?;
    assert!(
        problems.is_empty(),
        "Volcano's HyperNode CRD refused or changed Kelvin's objects:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// The refusal of `body`, created strictly or not; fails if it was accepted.
async fn refusal(client: &Client, kind: &KindInfo, body: &Value, strict: bool) -> Result<String> {
    match create(client, kind, body, strict).await {
        Ok(_) => bail!("the API server accepted {body}"),
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
            Ok(describe_error(&kube::Error::Api(status)))
        }
        Err(e) => Err(e).context("creating a wrong object"),
    }
}

/// The schemas are enforced: objects that differ from an accepted one in one wrong field are
/// refused (or, without strict field validation, stored without it).
#[tokio::test]
async fn kueue_and_volcano_crds_refuse_wrong_objects() -> Result<()> {
    let c = cluster()?;
    let client = c.client().await?;
    install_third_party_crds(c, &client).await?;

    // A ClusterQueue as Kelvin writes it for examples/small, under a name of its own.
    let small = Case::new("examples/small/cluster.yaml").manifests(KUEUE_GROUP)?;
    let queue = small
        .iter()
        .find(|m| m.key.kind == "ClusterQueue")
        .context("examples/small has no ClusterQueue")?;
    let kind = kind_info(queue)?;
    let mut good = queue.body.clone();
    good["metadata"]["name"] = json!(unique_name("cq"));
    let stored = create(&client, &kind, &good, true).await?;
    api(&client, &kind, None)
        .delete(
            good["metadata"]["name"].as_str().unwrap_or_default(),
            &DeleteParams::default(),
        )
        .await?;
    assert_eq!(stored["spec"]["cohortName"], good["spec"]["cohortName"]);

    // v1beta1's `cohort`, renamed `cohortName` in v1beta2: unknown, so refused when strict...
    let mut wrong = good.clone();
    wrong["metadata"]["name"] = json!(unique_name("cq"));
    wrong["spec"]["cohort"] = json!("lab");
    let message = refusal(&client, &kind, &wrong, true).await?;
    assert!(
        message.contains("unknown field \"spec.cohort\""),
        "unexpected refusal: {message}"
    );
    // ...and dropped without a word (a warning header) when not: why Kelvin's objects are
    // created strictly above.
    let stored = create(&client, &kind, &wrong, false).await?;
    assert!(
        stored["spec"].get("cohort").is_none(),
        "spec.cohort was kept: {stored}"
    );
    api(&client, &kind, None)
        .delete(
            wrong["metadata"]["name"].as_str().unwrap_or_default(),
            &DeleteParams::default(),
        )
        .await?;

    // A value the schema refuses whatever the field validation: a quantity that is none.
    let mut wrong = good.clone();
    wrong["metadata"]["name"] = json!(unique_name("cq"));
    wrong["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] =
        json!("lots");
    let message = refusal(&client, &kind, &wrong, false).await?;
    assert!(
        message.contains("nominalQuota"),
        "unexpected refusal: {message}"
    );

    // Volcano: a HyperNode within v1.13.0's schema is accepted; the same with a member of an
    // unknown type (enum), or selected two ways at once (a CEL rule of volcano.sh/apis), is not.
    let hyper_node = Desired::kinds()
        .into_iter()
        .find(|k| k.kind == "HyperNode")
        .context("Kelvin writes no HyperNode")?;
    let member = |selector: Value| json!({"type": "Node", "selector": selector});
    let hyper = |name: &str, member: Value| {
        json!({
            "apiVersion": hyper_node.api_version,
            "kind": "HyperNode",
            "metadata": {"name": name},
            "spec": {"tier": 1, "members": [member]},
        })
    };
    let name = unique_name("hn");
    let exact = json!({"exactMatch": {"name": "gpu-00001"}});
    create(
        &client,
        &hyper_node,
        &hyper(&name, member(exact.clone())),
        true,
    )
    .await?;
    api(&client, &hyper_node, None)
        .delete(&name, &DeleteParams::default())
        .await?;

    let mut rack = member(exact);
    rack["type"] = json!("Rack");
    let message = refusal(&client, &hyper_node, &hyper(&unique_name("hn"), rack), true).await?;
    assert!(
        message.contains("spec.members[0].type") && message.contains("Unsupported value"),
        "unexpected refusal: {message}"
    );

    let both =
        member(json!({"exactMatch": {"name": "gpu-00001"}, "regexMatch": {"pattern": "gpu-.*"}}));
    let message = refusal(&client, &hyper_node, &hyper(&unique_name("hn"), both), true).await?;
    assert!(
        message.contains("Only one of ExactMatch, RegexMatch, or LabelMatch can be specified"),
        "unexpected refusal: {message}"
    );
    Ok(())
}
