use super::*;

const NODE: &str = r#"
  metadata: {name: gpu-00007, labels: {kelvin.dev/sku: hgx-h100}}
  spec:
    taints: [{key: node.kubernetes.io/unreachable, effect: NoExecute, timeAdded: "2026-12-01T10:00:00Z"}]
  status:
    capacity: {cpu: "224", nvidia.com/gpu: "8"}
    allocatable: {cpu: "220", nvidia.com/gpu: 8}
    conditions: [{type: Ready, status: "True"}]
"#;

fn errors(file: &str, text: &str) -> Vec<String> {
    match load_inventory(file, text.as_bytes()) {
        Ok(nodes) => panic!("read {} nodes from {text}", nodes.len()),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_kubectl_node_list_and_single_node_documents_read_the_same() {
    let list = format!("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node{NODE}");
    let single = format!("apiVersion: v1\nkind: Node\n{}", NODE.replace("\n  ", "\n"));
    let from_list = load_inventory("list.yaml", list.as_bytes()).unwrap();
    let from_single = load_inventory("node.yaml", single.as_bytes()).unwrap();
    assert_eq!(from_list, from_single);
    let node = &from_list[0];
    assert_eq!(node.name, "gpu-00007");
    assert_eq!(node.capacity.get("nvidia.com/gpu"), Some(8));
    assert!(
        !node.capacity.contains_key("cpu"),
        "only extended resources"
    );
    assert_eq!(node.taints[0].key, "node.kubernetes.io/unreachable");
    assert!(node.ready);
}

/// `kubectl get nodes -o json`'s shape: items before kind, every field Kelvin does not keep.
const JSON_LIST: &str = r#"{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "annotations": {"kelvin.dev/owned-taints": "a:NoSchedule", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kelvin.dev/sku": "hgx-h100", "kubernetes.io/hostname": "gpu-00007"},
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:images": {}}}}],
                "name": "gpu-00007"
            },
            "spec": {"podCIDR": "10.0.0.0/24", "taints": [{"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "timeAdded": "2026-12-01T10:00:00Z"}]},
            "status": {
                "allocatable": {"cpu": "220", "nvidia.com/gpu": "8"},
                "capacity": {"cpu": "224", "nvidia.com/gpu": "8", "memory": "2Ti"},
                "conditions": [{"type": "MemoryPressure", "status": "False", "message": "kubelet has sufficient memory available"}, {"type": "Ready", "status": "True"}],
                "images": [{"names": ["nvcr.io/nvidia/pytorch:24.01-py3"], "sizeBytes": 9876543210}]
            }
        },
        {"kind": "Node", "metadata": {"name": "gpu-00008"}}
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}"#;

#[test]
fn a_json_node_list_is_streamed_into_the_same_nodes() {
    let nodes = load_inventory("nodes.json", JSON_LIST.as_bytes()).unwrap();
    assert_eq!(nodes.len(), 2);
    let yaml = format!("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node{NODE}");
    let mut from_yaml = load_inventory("list.yaml", yaml.as_bytes()).unwrap();
    from_yaml[0]
        .labels
        .insert("kubernetes.io/hostname".to_owned(), "gpu-00007".into());
    from_yaml[0].annotations.insert(
        "kelvin.dev/owned-taints".to_owned(),
        "a:NoSchedule".to_owned(),
    );
    assert_eq!(nodes[0], from_yaml[0]);
    assert_eq!(nodes[1].name, "gpu-00008");
    assert!(!nodes[1].ready, "no Ready condition");
}

#[test]
fn a_list_of_pods_is_not_read_as_nodes() {
    let pods = r#"{"apiVersion": "v1", "items": [
        {"kind": "Pod", "metadata": {"name": "trainer-0"}, "spec": {"containers": []}},
        {"kind": "Pod", "metadata": {"name": "trainer-1"}}], "kind": "List"}"#;
    let found = errors("pods.json", pods);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with(
            "error: pods.json:2:9: items[0].kind: Pod trainer-0 is not a Node: an inventory lists nodes"
        ),
        "{found:#?}"
    );
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: trainer-0}\n";
    let found = errors("pods.yaml", yaml);
    assert!(
        found[0].starts_with("error: pods.yaml:4:9: items[0].kind: Pod trainer-0 is not a Node"),
        "{found:#?}"
    );
}

#[test]
fn a_node_without_a_name_is_an_error_naming_the_item() {
    let text = r#"{"kind": "NodeList", "apiVersion": "v1", "items": [{"metadata": {"name": "a"}},
 {"metadata": {"labels": {"x": "y"}}}]}"#;
    let found = errors("nodes.json", text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "error: nodes.json:2:2: items[1].metadata.name: Required value: a node without a name"
        ),
        "{found:#?}"
    );
    let yaml = "kind: List\nitems:\n- metadata: {name: a}\n- metadata:\n    labels: {x: z}\n";
    let found = errors("nodes.yaml", yaml);
    assert!(
        found
            == [
                "error: nodes.yaml:5:5: items[1].metadata.name: Required value: a node without a name\n  fix: give every node metadata.name (kubectl get nodes -o json always does)"
            ],
        "{found:#?}"
    );
}

#[test]
fn a_label_value_that_is_not_a_string_is_an_error_naming_node_and_key() {
    let text = r#"{"kind": "List", "items": [{"kind": "Node", "metadata": {"name": "gpu-1",
        "labels": {"kelvin.dev/sku": "hgx-h100", "kelvin.dev/rack": 5}}}]}"#;
    let found = errors("nodes.json", text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains(
            "items[0].metadata.labels[\"kelvin.dev/rack\"]: Invalid value: 5 (number): a label value must be a string"
        ),
        "{found:#?}"
    );
    let yaml =
        "kind: List\nitems:\n- kind: Node\n  metadata:\n    name: gpu-1\n    labels: {rack: 5}\n";
    let found = errors("nodes.yaml", yaml);
    assert!(
        found[0].starts_with(
            "error: nodes.yaml:6:13: items[0].metadata.labels[\"rack\"]: Invalid value: 5 (number)"
        ),
        "{found:#?}"
    );
}

#[test]
fn json_syntax_and_type_errors_name_line_and_column() {
    let found = errors(
        "bad.json",
        "{\"kind\": \"List\", \"items\": [\n  {\"metadata\": {\"name\": 7}},\n  {\"metadata\": [}\n]}",
    );
    assert!(
        found[0].starts_with(
            "error: bad.json:2:3: items[0].metadata.name: Invalid value: 7 (number): must be of type string"
        ),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("error: bad.json:3:17: items[1]: JSON: expected value"),
        "{found:#?}"
    );
    let found = errors("trail.json", "{\"kind\": \"List\", \"items\": []} {}");
    assert!(
        found[0].starts_with("error: trail.json:1:31: JSON: more after the top-level object"),
        "{found:#?}"
    );
    let found = errors("open.json", "{\"kind\": \"List\", \"items\": [{\"a\": \"");
    assert!(
        found[0].contains("JSON: the file ends inside a value"),
        "{found:#?}"
    );
}

#[test]
fn duplicates_and_many_problems_are_reported_once_each_then_counted() {
    let mut items: Vec<String> = (0..50)
        .map(|n| format!("{{\"kind\": \"Pod\", \"metadata\": {{\"name\": \"p{n}\"}}}}"))
        .collect();
    items.push("{\"metadata\": {\"name\": \"n\"}}".to_owned());
    items.push("{\"metadata\": {\"name\": \"n\"}}".to_owned());
    let text = format!("{{\"kind\": \"List\", \"items\": [{}]}}", items.join(",\n"));
    let found = errors("many.json", &text);
    assert_eq!(found.len(), MAX_REPORTED + 1, "{found:#?}");
    assert!(
        found
            .last()
            .unwrap()
            .contains("and 31 more problems like these"),
        "{found:#?}"
    );
    let twice = "{\"kind\": \"List\", \"items\": [{\"metadata\": {\"name\": \"n\"}},\n{\"metadata\": {\"name\": \"n\"}}]}";
    let found = errors("twice.json", twice);
    assert_eq!(
        found,
        [
            "error: twice.json:2:1: items[1]: node \"n\" is listed twice (also items[0])\n  fix: list each node once"
        ]
    );
}

#[test]
fn other_kinds_and_a_kelvin_inventory_in_json() {
    let found = errors(
        "cm.json",
        r#"{"kind": "ConfigMap", "apiVersion": "v1", "data": {}}"#,
    );
    assert!(
        found[0].contains("kind: kind \"ConfigMap\" is not an inventory"),
        "{found:#?}"
    );
    let inventory = r#"{"apiVersion": "kelvin.dev/v1alpha1", "kind": "Inventory",
        "nodes": [{"name": "a", "labels": {"x": "y"}, "capacity": {"nvidia.com/gpu": 8}}]}"#;
    let nodes = load_inventory("inv.json", inventory.as_bytes()).unwrap();
    assert_eq!(nodes[0].capacity.get("nvidia.com/gpu"), Some(8));
    let found = errors("empty.json", "{}");
    assert!(
        found[0].contains("kind: Required value: kind"),
        "{found:#?}"
    );
}
