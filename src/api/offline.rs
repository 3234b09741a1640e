//! Offline admission: the checks the API server applies to our kinds — OpenAPI schema (types,
//! enums, patterns, ranges, lengths, required and unknown fields) and the CEL rules — run without
//! a cluster, so `stamp-operator plan` refuses what `kubectl apply` would. The end-to-end tests
//! hold this to the real kube-apiserver's verdicts; it never replaces them.

use kube::core::cel::Validator;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{GlobalPlane, PrivateEndpointSet, Stamp};

/// Why a manifest would be refused at admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AdmissionError {
    /// JSON path of the offending field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The openAPIV3Schema of the CRD serving `kind`.
pub fn schema_for(kind: &str) -> Option<Value> {
    let crd = match kind {
        "GlobalPlane" => GlobalPlane::crd(),
        "Stamp" => Stamp::crd(),
        "PrivateEndpointSet" => PrivateEndpointSet::crd(),
        _ => return None,
    };
    let schema = crd
        .spec
        .versions
        .first()?
        .schema
        .as_ref()?
        .open_api_v3_schema
        .as_ref()?;
    serde_json::to_value(schema).ok()
}

/// Checks `object` (a whole manifest as JSON) against its kind's schema and CEL rules.
pub fn check(object: &Value) -> Result<(), Vec<AdmissionError>> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(schema) = schema_for(kind) else {
        return Err(vec![AdmissionError {
            path: "kind".into(),
            message: format!("`{kind}` is not a kind of missioncritical.dev/v1alpha1"),
        }]);
    };
    let mut errors = Vec::new();
    // metadata is checked by the API server's own rules; the CEL rules read metadata.name.
    let mut body = object.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
    }
    check_value(&schema, &body, "", &mut errors);
    if errors.is_empty() {
        if let Err(cel) = Validator::new().validate_with_defaults(&schema, object, None) {
            errors.extend(cel.into_vec().into_iter().map(|e| {
                let path = if e.field_path.is_empty() {
                    "object".to_string()
                } else {
                    e.field_path.clone()
                };
                AdmissionError {
                    path,
                    message: e.message.clone(),
                }
            }));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn push(errors: &mut Vec<AdmissionError>, path: &str, message: String) {
    let path = path.trim_start_matches('.');
    errors.push(AdmissionError {
        path: if path.is_empty() {
            "object".into()
        } else {
            path.to_string()
        },
        message,
    });
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn check_value(schema: &Value, value: &Value, path: &str, errors: &mut Vec<AdmissionError>) {
    if value.is_null()
        && schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(expected, value) {
            push(errors, path, format!("must be of type {expected}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            push(
                errors,
                path,
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                ),
            );
        }
    }
    match value {
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    push(
                        errors,
                        path,
                        format!("should be greater than or equal to {min}"),
                    );
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    push(
                        errors,
                        path,
                        format!("should be less than or equal to {max}"),
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    push(errors, path, format!("must have at most {max} items"));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    push(errors, path, format!("should have at least {min} items"));
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_value(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
            check_list_keys(schema, items, path, errors);
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(field) {
                        push(errors, &format!("{path}.{field}"), "Required value".into());
                    }
                }
            }
            for (key, child) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(child_schema) => {
                        check_value(child_schema, child, &format!("{path}.{key}"), errors)
                    }
                    None if properties.is_some() => {
                        push(errors, &format!("{path}.{key}"), "unknown field".into())
                    }
                    None => {}
                }
            }
        }
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<AdmissionError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            push(
                errors,
                path,
                format!("may not be more than {max} characters"),
            );
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if len < min {
            push(errors, path, format!("should be at least {min} characters"));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => push(errors, path, format!("should match '{pattern}'")),
            Ok(_) => {}
            Err(e) => push(
                errors,
                path,
                format!("schema pattern does not compile: {e}"),
            ),
        }
    }
}

fn check_list_keys(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<AdmissionError>) {
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let key = match list_type {
            Some("set") => item.to_string(),
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("/")
            }
            _ => return,
        };
        if !seen.insert(key.clone()) {
            push(
                errors,
                &format!("{path}[{i}]"),
                format!("Duplicate value: {key}"),
            );
        }
    }
}
