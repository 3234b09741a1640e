//! Reading our kinds from YAML files, with the same refusals admission would give.

use serde_json::Value;

use super::offline::{self, AdmissionError};
use super::{GlobalPlane, PrivateEndpointSet, Stamp};

/// One object of ours read from a manifest.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// A GlobalPlane.
    GlobalPlane(Box<GlobalPlane>),
    /// A Stamp.
    Stamp(Box<Stamp>),
    /// A PrivateEndpointSet.
    PrivateEndpointSet(Box<PrivateEndpointSet>),
}

/// Why a document was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML.
    #[error("document {index}: not valid YAML: {source}")]
    Yaml {
        /// 1-based document number.
        index: usize,
        /// Parser error.
        source: serde_yaml::Error,
    },
    /// Refused by the schema or a CEL rule.
    #[error("document {index} ({kind} {name}): {}", format_admission(errors))]
    Refused {
        /// 1-based document number.
        index: usize,
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Each refusal.
        errors: Vec<AdmissionError>,
    },
}

fn format_admission(errors: &[AdmissionError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn refused(index: usize, doc: &Value, errors: Vec<AdmissionError>) -> ManifestError {
    let text = |ptr: &str| {
        doc.pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    ManifestError::Refused {
        index,
        kind: text("/kind"),
        name: text("/metadata/name"),
        errors,
    }
}

/// Parses every document in `text`; empty documents are skipped.
pub fn parse_manifests(text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let yaml = serde_yaml::Value::deserialize_from(document)
            .map_err(|source| ManifestError::Yaml { index, source })?;
        if yaml.is_null() {
            continue;
        }
        let doc: Value = serde_json::to_value(&yaml).map_err(|e| {
            refused(
                index,
                &Value::Null,
                vec![AdmissionError {
                    path: ".".into(),
                    message: e.to_string(),
                }],
            )
        })?;
        if doc.get("apiVersion").and_then(Value::as_str) != Some("missioncritical.dev/v1alpha1") {
            return Err(refused(
                index,
                &doc,
                vec![AdmissionError {
                    path: "apiVersion".into(),
                    message: "must be missioncritical.dev/v1alpha1".into(),
                }],
            ));
        }
        let name_ok = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(is_dns_subdomain);
        if !name_ok {
            return Err(refused(
                index,
                &doc,
                vec![AdmissionError {
                    path: "metadata.name".into(),
                    message: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'".into(),
                }],
            ));
        }
        offline::check(&doc).map_err(|errors| refused(index, &doc, errors))?;
        let typed = |e: serde_json::Error| {
            refused(
                index,
                &doc,
                vec![AdmissionError {
                    path: ".".into(),
                    message: e.to_string(),
                }],
            )
        };
        let manifest = match doc.get("kind").and_then(Value::as_str) {
            Some("GlobalPlane") => Manifest::GlobalPlane(Box::new(
                serde_json::from_value(doc.clone()).map_err(typed)?,
            )),
            Some("Stamp") => Manifest::Stamp(Box::new(
                serde_json::from_value(doc.clone()).map_err(typed)?,
            )),
            _ => Manifest::PrivateEndpointSet(Box::new(
                serde_json::from_value(doc.clone()).map_err(typed)?,
            )),
        };
        out.push(manifest);
    }
    Ok(out)
}

trait DeserializeFrom: Sized {
    fn deserialize_from(d: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl DeserializeFrom for serde_yaml::Value {
    fn deserialize_from(d: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(d)
    }
}

/// Kubernetes object names: lowercase RFC 1123 subdomain, at most 253 characters.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
