//! Ownership end to end (real API server, the chart's RBAC, the emulator): the operator removes
//! what leaves the spec, and never deletes or re-tags what it did not create.

mod support;

use serde_json::{json, Value};
use support::expect::{applied_ready, condition, eventually, ready as wait_ready};
use support::stage::{json_of, stage, Stage};

fn created_matching(st: &Stage, fragment: &str) -> Vec<String> {
    st.created()
        .into_iter()
        .filter(|id| id.to_ascii_lowercase().contains(fragment))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_allow_list_takes_its_rules_out_of_the_firewall() {
    let st = stage().await;
    let operator = st.operator("replica-a", "127.0.0.1:0");
    applied_ready(&st, &["prod", "weu-blue"], &operator);
    let workload = created_matching(&st, "/rulecollectiongroups/workload");
    assert_eq!(
        workload.len(),
        1,
        "the example's allow list has a rule collection group"
    );

    st.patch_stamp(r#"{"egress":{"allow":[]}}"#);
    // While the group is still there, the stamp must not claim isolation for the new spec.
    eventually(
        "the workload rule collection group's removal",
        &operator,
        async || {
            let stamp = json_of(
                &st.cp,
                &["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"],
            );
            let current = stamp["status"]["observedGeneration"] == stamp["metadata"]["generation"];
            let isolated = condition(&stamp, "NetworkIsolated").0 == "True";
            let gone = created_matching(&st, "/rulecollectiongroups/workload").is_empty();
            assert!(
            !(current && isolated) || gone,
            "NetworkIsolated for the new spec while its dropped rules still allow traffic: {:#}",
            stamp["status"]
        );
            gone && current && condition(&stamp, "Ready").0 == "True" && isolated
        },
    )
    .await;
    // The rest of the firewall policy is untouched.
    assert!(!created_matching(&st, "/rulecollectiongroups/").is_empty());
    assert!(!created_matching(&st, "/firewallpolicies/").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_removed_from_its_set_is_deleted_with_its_records() {
    let st = stage().await;
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue", "weu-blue-paas"]);
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, &operator);
    let set = json_of(
        &st.cp,
        &["get", "pes", "weu-blue-paas", "-n", "prod", "-o", "json"],
    );
    let endpoints = set["spec"]["endpoints"].as_array().unwrap();
    let blob = endpoints.iter().position(|e| e["name"] == "blob").unwrap();
    let before = created_matching(&st, "/privateendpoints/").len();
    let blob_endpoints: Vec<String> = created_matching(&st, "/privateendpoints/")
        .into_iter()
        .filter(|id| id.to_ascii_lowercase().contains("blob"))
        .collect();
    assert!(!blob_endpoints.is_empty(), "the blob endpoint exists");
    let blob_records = created_matching(&st, "privatelink.blob.core.windows.net/a/");

    let patch = json!([{ "op": "remove", "path": format!("/spec/endpoints/{blob}") }]).to_string();
    st.cp.kubectl_ok(&[
        "patch",
        "pes",
        "weu-blue-paas",
        "-n",
        "prod",
        "--type=json",
        "-p",
        &patch,
    ]);
    eventually("the removed endpoint's deletion", &operator, async || {
        let set = json_of(
            &st.cp,
            &["get", "pes", "weu-blue-paas", "-n", "prod", "-o", "json"],
        );
        let current = set["status"]["observedGeneration"] == set["metadata"]["generation"];
        let gone = blob_endpoints
            .iter()
            .all(|id| !st.created().iter().any(|c| c.eq_ignore_ascii_case(id)));
        gone && current && condition(&set, "Ready").0 == "True"
    })
    .await;
    assert_eq!(
        created_matching(&st, "/privateendpoints/").len(),
        before - blob_endpoints.len(),
        "only the removed endpoint went"
    );
    for record in blob_records {
        assert!(
            !st.created().iter().any(|c| c.eq_ignore_ascii_case(&record)),
            "its DNS record {record} is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_group_that_existed_before_survives_with_its_tags_and_its_contents() {
    let st = stage().await;
    let global: Value =
        serde_yaml::from_str(&std::fs::read_to_string(st.examples_named(&["prod"])).unwrap())
            .unwrap();
    let sub = global["spec"]["subscriptionId"].as_str().unwrap();
    let group = format!(
        "/subscriptions/{sub}/resourceGroups/{}",
        global["spec"]["resourceGroup"].as_str().unwrap()
    );
    let team_tags = json!({ "team": "payments", "cost-center": "42" });
    st.arm
        .put(
            &group,
            "2024-03-01",
            &json!({ "location": "westeurope", "tags": team_tags }),
            None,
        )
        .await
        .unwrap();
    let foreign_ip = format!("{group}/providers/Microsoft.Network/publicIPAddresses/payments-ip");
    let ip = st
        .arm
        .put(
            &foreign_ip,
            "2024-05-01",
            &json!({ "location": "westeurope", "sku": { "name": "Standard" }, "properties": { "publicIPAllocationMethod": "Static" } }),
            None,
        )
        .await
        .unwrap();
    if let stamp_operator::azure::PutOutcome::Started(op) = ip {
        st.arm.wait(&op).await.unwrap();
    }
    let tags_of_group = async || {
        st.arm
            .get(&group, "2024-03-01")
            .await
            .unwrap()
            .map(|g| g.body["tags"].clone())
    };

    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = &applied_ready(&st, &["prod", "weu-blue"], &operator);
    assert_eq!(
        tags_of_group().await,
        Some(team_tags.clone()),
        "the group was re-tagged"
    );
    let writes_to_group = st
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.eq_ignore_ascii_case(&group))
        .count();
    assert_eq!(
        writes_to_group, 1,
        "only the test's own PUT wrote the group"
    );

    let gone = st.cp.kubectl(&["delete", "-f", objects, "--timeout=240s"]);
    assert!(gone.status.success(), "not deleted: {}", operator.log());
    assert_eq!(
        tags_of_group().await,
        Some(team_tags),
        "the group is gone or re-tagged"
    );
    assert!(
        st.arm
            .get(&foreign_ip, "2024-05-01")
            .await
            .unwrap()
            .is_some(),
        "the other team's public IP was deleted"
    );
    let left: Vec<String> = st
        .created()
        .into_iter()
        .filter(|id| !id.eq_ignore_ascii_case(&group) && !id.eq_ignore_ascii_case(&foreign_ip))
        .collect();
    assert!(left.is_empty(), "the operator left behind: {left:#?}");
}

/// `objects` (a file of examples) with `edit` applied to its YAML text.
fn edited(objects: &std::path::Path, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(objects).unwrap();
    let changed = edit(text.clone());
    assert_ne!(changed, text, "the edit changed nothing");
    std::fs::write(objects, changed).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_in_a_named_group_with_endpoints_finishes_deleting_and_leaves_the_group() {
    let st = stage().await;
    let sub = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";
    let group = format!("/subscriptions/{sub}/resourceGroups/rg-team-weu");
    st.arm
        .put(
            &group,
            "2024-03-01",
            &json!({ "location": "westeurope" }),
            None,
        )
        .await
        .unwrap();
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue", "weu-blue-paas"]);
    edited(&objects, |yaml| {
        yaml.replace(
            "  region: westeurope\n",
            "  region: westeurope\n  resourceGroup: rg-team-weu\n",
        )
    });
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, &operator);
    assert!(!created_matching(
        &st,
        "/rg-team-weu/providers/microsoft.network/privateendpoints/"
    )
    .is_empty());

    let gone = st.cp.kubectl(&["delete", "-f", objects, "--timeout=240s"]);
    assert!(
        gone.status.success(),
        "not deleted: {}\n{}",
        String::from_utf8_lossy(&gone.stderr),
        operator.log()
    );
    let left: Vec<String> = st
        .created()
        .into_iter()
        .filter(|id| !id.eq_ignore_ascii_case(&group))
        .collect();
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(
        st.arm.get(&group, "2024-03-01").await.unwrap().is_some(),
        "the named group survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_outliving_an_orphaned_global_plane_still_clean_up_after_themselves() {
    let st = stage().await;
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue"]);
    edited(&objects, |yaml| {
        yaml.replace(
            "  resourceGroup: rg-prod-global\n",
            "  resourceGroup: rg-prod-global\n  deletionPolicy: Orphan\n",
        )
    });
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, &operator);
    let stamp = json_of(
        &st.cp,
        &["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"],
    );
    let stamp_group = stamp["status"]["outputs"]["resourceGroupId"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    let origin = stamp["status"]["outputs"]["frontDoorOriginId"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();

    st.cp
        .kubectl_ok(&["delete", "globalplane", "prod", "--timeout=120s"]);
    let gone = st.cp.kubectl(&[
        "delete",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--timeout=240s",
    ]);
    assert!(gone.status.success(), "not deleted: {}", operator.log());
    let left: Vec<String> = st
        .created()
        .into_iter()
        .map(|id| id.to_ascii_lowercase())
        .filter(|id| id.starts_with(&stamp_group) || *id == origin)
        .collect();
    assert!(left.is_empty(), "the stamp left behind: {left:#?}");
    assert!(
        !created_matching(&st, "/profiles/").is_empty(),
        "the orphaned GlobalPlane's Front Door stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_deleted_before_its_status_recorded_its_endpoints_leaves_none() {
    let st = stage().await;
    let mut operator = st.solo_operator("first", &[]);
    let base = st.examples_named(&["prod", "weu-blue"]);
    let base = base.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", base]);
    wait_ready(&st, base, &operator);
    let set = st.examples_named(&["weu-blue-paas"]);
    st.cp.kubectl_ok(&["apply", "-f", set.to_str().unwrap()]);
    eventually("the set's first endpoints", &operator, async || {
        !created_matching(&st, "/privateendpoints/").is_empty()
    })
    .await;
    // The operator dies before the set's status records them (status is written seconds after
    // the writes it reports); what it had written of status is lost with it.
    operator.kill();
    st.cp.kubectl_ok(&[
        "patch",
        "pes",
        "weu-blue-paas",
        "-n",
        "prod",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":null}"#,
    ]);
    st.cp.kubectl_ok(&[
        "delete",
        "pes",
        "weu-blue-paas",
        "-n",
        "prod",
        "--wait=false",
    ]);
    let successor = st.solo_operator("second", &[]);
    let gone = st.cp.kubectl(&[
        "wait",
        "--for=delete",
        "pes/weu-blue-paas",
        "-n",
        "prod",
        "--timeout=240s",
    ]);
    assert!(gone.status.success(), "not deleted: {}", successor.log());
    let left = created_matching(&st, "/privateendpoints/");
    assert!(left.is_empty(), "the set left endpoints behind: {left:#?}");
}
