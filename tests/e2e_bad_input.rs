//! Bad input, end to end: every manifest of the corpus in `tests/invalid` is either refused by
//! the real API server (schema, CEL) or, where only the operator can tell, accepted and marked
//! by the running operator — Ready=False with the corpus's message, Stalled for an invalid spec —
//! and in no case does anything reach Azure as a write. The examples the cases refer to are
//! applied paused (reads only), so any write at all would be the bad input's.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::stage::{stage, Stage};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docs` with `spec.paused: true` on every object, as one file.
fn paused(st: &Stage, files: &[&str]) -> PathBuf {
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(root().join("deploy/examples").join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut v: Value = serde::Deserialize::deserialize(doc).unwrap();
            v["spec"]["paused"] = Value::Bool(true);
            docs.push(serde_yaml::to_string(&v).unwrap());
        }
    }
    let path = st.work.path().join(format!("paused-{}", files.join("+")));
    std::fs::write(&path, docs.join("---\n")).unwrap();
    path
}

struct Object {
    resource: String,
    name: String,
    namespace: Option<String>,
}

fn objects_of(text: &str) -> Vec<Object> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .map(|v: Value| Object {
            resource: match v["kind"].as_str().unwrap() {
                "GlobalPlane" => "globalplane",
                "Stamp" => "stamp",
                _ => "privateendpointset",
            }
            .to_string(),
            name: v["metadata"]["name"].as_str().unwrap().to_string(),
            namespace: v["metadata"]["namespace"].as_str().map(String::from),
        })
        .collect()
}

fn status_of(st: &Stage, o: &Object) -> Value {
    let mut args = vec!["get", &o.resource[..], &o.name[..], "-o", "json"];
    if let Some(ns) = &o.namespace {
        args.extend(["-n", ns]);
    }
    let out = st.cp.kubectl(&args);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"].clone()
}

fn condition<'a>(status: &'a Value, t: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_marked_and_never_written_to_azure() {
    let st = stage().await;
    let context_gp = paused(&st, &["globalplane.yaml"]);
    let context_stamp = paused(&st, &["stamp-westeurope.yaml"]);
    st.cp
        .kubectl_ok(&["apply", "-f", context_gp.to_str().unwrap()]);
    st.cp
        .kubectl_ok(&["apply", "-f", context_stamp.to_str().unwrap()]);
    let operator = st.solo_operator("strict", &[]);

    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut by_server, mut by_operator) = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap()
            .to_string();
        // A missing dependency may still appear: the running operator says it is waiting for
        // it (Pending), where the offline check, seeing the whole bundle, calls it an error.
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# operator-expect: "))
            .map_or(expect, String::from);
        let applied = st.cp.kubectl(&["apply", "-f", file.to_str().unwrap()]);
        if !applied.status.success() {
            by_server += 1;
            continue;
        }
        by_operator += 1;
        let objects = objects_of(&text);
        let deadline = Instant::now() + Duration::from_secs(30);
        let verdict = loop {
            let marked = objects.iter().find_map(|o| {
                let status = status_of(&st, o);
                let ready = condition(&status, "Ready")?;
                let message = ready["message"].as_str().unwrap_or_default();
                (ready["status"] == "False" && message.contains(&expect)).then(|| {
                    (
                        status["phase"].clone(),
                        condition(&status, "Stalled").cloned(),
                    )
                })
            });
            if let Some(found) = marked {
                break Some(found);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        match verdict {
            None => failures.push(format!(
                "{name}: accepted by the API server, but no object reports `{expect}`: {:?}",
                objects
                    .iter()
                    .map(|o| status_of(&st, o))
                    .collect::<Vec<_>>()
            )),
            Some((phase, stalled)) => {
                let invalid = phase == "InvalidSpec";
                let stalled = stalled.is_some_and(|c| c["status"] == "True");
                // An invalid spec waits for a change (Stalled); a missing dependency may still
                // appear (Pending, not Stalled).
                if invalid != stalled || !(invalid || phase == "Pending") {
                    failures.push(format!("{name}: phase {phase}, Stalled={stalled}"));
                }
            }
        }
        // Put the context back as it was (a case may have replaced the GlobalPlane).
        if objects
            .iter()
            .any(|o| o.resource == "globalplane" && o.name == "prod")
        {
            st.cp
                .kubectl_ok(&["apply", "-f", context_gp.to_str().unwrap()]);
        } else {
            st.cp.kubectl_ok(&[
                "delete",
                "-f",
                file.to_str().unwrap(),
                "--wait=true",
                "--timeout=60s",
            ]);
        }
    }
    assert!(
        failures.is_empty(),
        "{}\noperator log:\n{}",
        failures.join("\n"),
        operator.log()
    );
    assert!(
        by_server + by_operator >= 40,
        "the corpus holds at least 40 manifests"
    );
    assert!(
        by_server > 0 && by_operator > 0,
        "{by_server} refused by the API server, {by_operator} by the operator"
    );
    let writes: Vec<String> = st
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("stamp-operator/"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "bad input reached Azure: {writes:#?}");
    // The context was read, so the operator did run against Azure all along.
    assert!(st.emulator.requests().iter().any(|r| r
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("stamp-operator/"))));
}
