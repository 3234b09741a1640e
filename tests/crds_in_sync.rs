//! `crds/` must hold exactly what `stamp-operator crd` generates from the Rust types.

use std::process::Command;

#[test]
fn crds_directory_matches_the_types() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, yaml) in stamp_operator::api::crd_documents().unwrap() {
        let on_disk = std::fs::read_to_string(format!("{root}/crds/{file}"))
            .unwrap_or_else(|e| panic!("crds/{file}: {e}; run `make crds`"));
        assert!(
            on_disk == yaml,
            "crds/{file} drifted from src/api; run `make crds`"
        );
    }
    let files = std::fs::read_dir(format!("{root}/crds")).unwrap().count();
    assert_eq!(files, 3, "crds/ holds exactly the three CRDs");
}

#[test]
fn crd_subcommand_prints_all_three() {
    let out = Command::new(env!("CARGO_BIN_EXE_stamp-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, stamp_operator::api::crds_yaml().unwrap());
    for kind in [
        "kind: GlobalPlane",
        "kind: Stamp",
        "kind: PrivateEndpointSet",
    ] {
        assert!(text.contains(kind), "{kind}");
    }
}

#[test]
fn crds_carry_what_kubectl_users_need() {
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&stamp_operator::api::crds_yaml().unwrap())
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
    let expect = [
        (
            "GlobalPlane",
            "Cluster",
            "gp",
            vec!["Front Door Host", "Stamps", "Ready", "Age"],
        ),
        (
            "Stamp",
            "Namespaced",
            "st",
            vec![
                "Region",
                "Address Space",
                "Ready",
                "Reason",
                "Firewall IP",
                "Age",
            ],
        ),
        (
            "PrivateEndpointSet",
            "Namespaced",
            "pes",
            vec!["Stamp", "Endpoints", "Ready", "Age"],
        ),
    ];
    for (doc, (kind, scope, short, columns)) in docs.iter().zip(expect) {
        let spec = &doc["spec"];
        assert_eq!(spec["names"]["kind"].as_str(), Some(kind));
        assert_eq!(spec["scope"].as_str(), Some(scope), "{kind}");
        assert_eq!(
            spec["names"]["shortNames"][0].as_str(),
            Some(short),
            "{kind}"
        );
        assert_eq!(
            spec["names"]["categories"][0].as_str(),
            Some("missioncritical"),
            "{kind}"
        );
        let version = &spec["versions"][0];
        assert!(
            version["subresources"]["status"].is_mapping(),
            "{kind} has a status subresource"
        );
        let names: Vec<&str> = version["additionalPrinterColumns"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for column in columns {
            assert!(
                names.contains(&column),
                "{kind} lacks printer column {column}: {names:?}"
            );
        }
    }
}

/// `kubectl explain` reads descriptions: every property of every spec must have one.
#[test]
fn every_spec_field_is_described() {
    fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                let here = format!("{path}.{name}");
                if child
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(child, &here, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    for kind in ["GlobalPlane", "Stamp", "PrivateEndpointSet"] {
        let schema = stamp_operator::api::offline::schema_for(kind).unwrap();
        let mut missing = Vec::new();
        walk(
            &schema["properties"]["spec"],
            &format!("{kind}.spec"),
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "fields without description: {missing:#?}"
        );
    }
}
