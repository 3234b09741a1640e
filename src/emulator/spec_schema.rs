//! Request validation derived from Azure's official REST API specs.
//!
//! `derive` walks the OpenAPI files in `shared/azure-specs/` (see its SOURCES.md): for every PUT
//! it resolves the body schema through `$ref` (across files) and `allOf` into a compact form —
//! property names, types, strict enums, required and read-only flags, no prose — which is
//! committed as `src/emulator/schemas.json` (`make emulator-schemas` regenerates it; a test fails
//! when it drifts from the specs). `validate` rejects unknown properties, wrong types, values
//! outside a strict enum and missing required properties, as ARM does with a 400.
//!
//! Compact node: `{"t": type, "p": {name: node}, "r": [required], "i": items, "ap": map values,
//! "e": [strict enum], "ro": read-only}` or `{"ref": definition key}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// The committed, derived schemas.
pub const COMPACT_SCHEMAS: &str = include_str!("schemas.json");

struct Deriver {
    root: PathBuf,
    files: BTreeMap<String, Value>,
    definitions: BTreeMap<String, Value>,
}

impl Deriver {
    fn file(&mut self, rel: &str) -> Option<Value> {
        if !self.files.contains_key(rel) {
            let text = std::fs::read_to_string(self.root.join(rel)).ok()?;
            let parsed: Value = serde_json::from_str(&text).ok()?;
            self.files.insert(rel.to_string(), parsed);
        }
        self.files.get(rel).cloned()
    }

    /// Resolves a `$ref` seen in `from` (a path relative to the spec root) to a definition key.
    fn resolve_ref(&mut self, from: &str, reference: &str) -> Option<String> {
        let (file_part, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let name = pointer.strip_prefix("/definitions/")?;
        let rel = if file_part.is_empty() {
            from.to_string()
        } else if let Some(i) = file_part.find("common-types/") {
            file_part[i..].to_string()
        } else {
            normalize(
                Path::new(from)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(file_part),
            )
        };
        // privateEndpoint.json (2024-03-01) refers to `./network.json`, which lives in the
        // 2024-05-01 folder beside it (see SOURCES.md): look in sibling versions.
        let rel = if self.file(&rel).is_some() {
            rel
        } else {
            self.sibling_version(&rel).unwrap_or(rel)
        };
        let key = format!("{rel}#{name}");
        if !self.definitions.contains_key(&key) {
            let file = self.file(&rel)?;
            let def = file.pointer(&format!("/definitions/{name}"))?.clone();
            self.definitions.insert(key.clone(), json!({ "t": "any" })); // breaks cycles
            let node = self.node(&rel, &def);
            self.definitions.insert(key.clone(), node);
            if let Some(property) = def.get("discriminator").and_then(Value::as_str) {
                self.add_variants(&rel, name, &key, property);
            }
        }
        Some(key)
    }

    fn node(&mut self, file: &str, s: &Value) -> Value {
        if let Some(reference) = s.get("$ref").and_then(Value::as_str) {
            return match self.resolve_ref(file, reference) {
                Some(key) => json!({ "ref": key }),
                None => json!({ "t": "any" }),
            };
        }
        let mut out = Map::new();
        let declared = s.get("type").and_then(Value::as_str);
        let is_object =
            declared == Some("object") || s.get("properties").is_some() || s.get("allOf").is_some();
        if is_object {
            out.insert("t".into(), json!("object"));
            let mut props = Map::new();
            let mut required: Vec<Value> = Vec::new();
            let mut open = false;
            for part in s
                .get("allOf")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let resolved = self.node(file, &part);
                let base = self.deref(&resolved);
                // A base defined in a file the specs folder lacks (cdn.json): its properties are
                // unknown, so unknown properties cannot be refused on this object.
                open |= base.get("t").and_then(Value::as_str) == Some("any")
                    || base.get("open").is_some();
                if let Some(p) = base.get("p").and_then(Value::as_object) {
                    props.extend(p.clone());
                }
                required.extend(
                    base.get("r")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            for (name, child) in s
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
            {
                props.insert(name, self.node(file, &child));
            }
            required.extend(
                s.get("required")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            out.insert("p".into(), Value::Object(props));
            if open {
                out.insert("open".into(), json!(true));
            }
            if !required.is_empty() {
                out.insert("r".into(), Value::Array(required));
            }
            match s.get("additionalProperties") {
                Some(Value::Object(ap)) => {
                    let node = self.node(file, &Value::Object(ap.clone()));
                    out.insert("ap".into(), node);
                }
                Some(Value::Bool(true)) => {
                    out.insert("ap".into(), json!({ "t": "any" }));
                }
                _ => {}
            }
        } else {
            match declared {
                Some("array") => {
                    out.insert("t".into(), json!("array"));
                    let items = s.get("items").cloned().unwrap_or(json!({}));
                    out.insert("i".into(), self.node(file, &items));
                }
                Some(t @ ("string" | "integer" | "number" | "boolean")) => {
                    out.insert("t".into(), json!(t));
                    // `modelAsString: true` makes an enum extensible: any string is accepted.
                    let extensible = s
                        .pointer("/x-ms-enum/modelAsString")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if let (Some(values), false) = (s.get("enum"), extensible) {
                        out.insert("e".into(), values.clone());
                    }
                }
                _ => {
                    out.insert("t".into(), json!("any"));
                }
            }
        }
        if s.get("readOnly").and_then(Value::as_bool) == Some(true) {
            out.insert("ro".into(), json!(true));
        }
        Value::Object(out)
    }

    /// Polymorphic definitions (`discriminator`): each subtype in the same file that extends
    /// `base` through `allOf` is a variant, chosen by its `x-ms-discriminator-value`.
    fn add_variants(&mut self, rel: &str, base: &str, base_key: &str, property: &str) {
        let Some(file) = self.file(rel) else { return };
        let suffix = format!("#/definitions/{base}");
        let mut variants = Map::new();
        for (child, def) in file
            .get("definitions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
        {
            let extends = def
                .get("allOf")
                .and_then(Value::as_array)
                .is_some_and(|parts| {
                    parts.iter().any(|p| {
                        p.get("$ref")
                            .and_then(Value::as_str)
                            .is_some_and(|r| r.ends_with(&suffix))
                    })
                });
            if !extends {
                continue;
            }
            let value = def
                .get("x-ms-discriminator-value")
                .and_then(Value::as_str)
                .unwrap_or(&child)
                .to_string();
            if let Some(child_key) = self.resolve_ref(rel, &format!("#/definitions/{child}")) {
                variants.insert(value, json!(child_key));
            }
        }
        if let Some(node) = self.definitions.get_mut(base_key) {
            node["d"] = json!({ "property": property, "variants": variants });
        }
    }

    fn sibling_version(&mut self, rel: &str) -> Option<String> {
        let path = Path::new(rel);
        let file_name = path.file_name()?.to_string_lossy().into_owned();
        let namespace = path.parent()?.parent()?;
        let mut versions: Vec<PathBuf> = std::fs::read_dir(self.root.join(namespace))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        versions.sort();
        versions
            .into_iter()
            .rev()
            .map(|v| {
                normalize(
                    namespace
                        .join(v.file_name().unwrap_or_default())
                        .join(&file_name),
                )
            })
            .find(|candidate| self.file(candidate).is_some())
    }

    fn deref(&self, node: &Value) -> Value {
        let mut current = node.clone();
        for _ in 0..16 {
            match current.get("ref").and_then(Value::as_str) {
                Some(key) => {
                    current = self
                        .definitions
                        .get(key)
                        .cloned()
                        .unwrap_or(json!({ "t": "any" }))
                }
                None => break,
            }
        }
        current
    }
}

fn normalize(path: PathBuf) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The resource type a spec path addresses, if its name segments are all parameters.
fn resource_type_of(path: &str) -> Option<String> {
    let tail = path.rsplit_once("/providers/")?.1;
    let segments: Vec<&str> = tail.split('/').collect();
    if segments.len() < 3 || segments.len().is_multiple_of(2) {
        return None;
    }
    if !segments[2..].iter().step_by(2).all(|s| s.starts_with('{')) {
        return None;
    }
    if segments[1..].iter().step_by(2).any(|s| s.starts_with('{')) {
        return None; // a type chosen by parameter (record sets): not one resource type
    }
    let mut t = segments[0].to_string();
    for s in segments[1..].iter().step_by(2) {
        t.push('/');
        t.push_str(s);
    }
    Some(t.to_ascii_lowercase())
}

/// Derives the compact schemas of every PUT body in the spec folder.
pub fn derive(spec_root: &Path) -> Result<Value, String> {
    let mut deriver = Deriver {
        root: spec_root.to_path_buf(),
        files: BTreeMap::new(),
        definitions: BTreeMap::new(),
    };
    let mut files = Vec::new();
    for ns in std::fs::read_dir(spec_root).map_err(|e| format!("{}: {e}", spec_root.display()))? {
        let ns = ns.map_err(|e| e.to_string())?.path();
        if !ns.is_dir() || ns.ends_with("common-types") {
            continue;
        }
        for version in std::fs::read_dir(&ns).map_err(|e| e.to_string())? {
            let version = version.map_err(|e| e.to_string())?.path();
            for file in std::fs::read_dir(&version).map_err(|e| e.to_string())? {
                let file = file.map_err(|e| e.to_string())?.path();
                if file.extension().is_some_and(|e| e == "json") {
                    files.push(normalize(
                        file.strip_prefix(spec_root)
                            .map_err(|e| e.to_string())?
                            .to_path_buf(),
                    ));
                }
            }
        }
    }
    files.sort();
    let mut types = BTreeMap::new();
    for rel in files {
        let doc = deriver
            .file(&rel)
            .ok_or_else(|| format!("cannot read {rel}"))?;
        let api_version = doc
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for (path, ops) in doc
            .get("paths")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
        {
            let Some(resource_type) = resource_type_of(&path) else {
                continue;
            };
            let Some(params) = ops.pointer("/put/parameters").and_then(Value::as_array) else {
                continue;
            };
            let Some(schema) = params
                .iter()
                .find(|p| p.get("in").and_then(Value::as_str) == Some("body"))
                .and_then(|p| p.get("schema"))
            else {
                continue;
            };
            let node = deriver.node(&rel, schema);
            types.insert(
                resource_type,
                json!({ "apiVersion": api_version, "source": rel, "body": node }),
            );
        }
    }
    Ok(json!({ "types": types, "definitions": deriver.definitions }))
}

/// The committed schemas, parsed once.
pub fn committed() -> &'static Value {
    static SCHEMAS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| {
        serde_json::from_str(COMPACT_SCHEMAS)
            .unwrap_or_else(|_| json!({ "types": {}, "definitions": {} }))
    })
}

/// Validates a request `body` for `resource_type` against the compact schemas. `Err` names the
/// first offending property path and what is wrong with it.
pub fn validate(schemas: &Value, resource_type: &str, body: &Value) -> Result<(), String> {
    let Some(root) = schemas.pointer(&format!(
        "/types/{}/body",
        resource_type.to_ascii_lowercase().replace('/', "~1")
    )) else {
        return Ok(()); // a type the specs folder does not describe
    };
    check(schemas, root, body, "")
}

fn check(schemas: &Value, node: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(key) = node.get("ref").and_then(Value::as_str) {
        let Some(def) = schemas.get("definitions").and_then(|d| d.get(key)) else {
            return Ok(());
        };
        return check(schemas, def, value, path);
    }
    let here = if path.is_empty() { "(body)" } else { path };
    match node.get("t").and_then(Value::as_str).unwrap_or("any") {
        "object" => {
            let Some(map) = value.as_object() else {
                return Err(format!("{here}: expected an object"));
            };
            if let Some(variant) = variant_of(schemas, node, map) {
                return check(schemas, &json!({ "ref": variant }), value, path);
            }
            let props = node.get("p").and_then(Value::as_object);
            for (k, v) in map {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (props.and_then(|p| p.get(k)), node.get("ap")) {
                    (Some(child), _) => {
                        if child.get("ro") != Some(&json!(true)) {
                            check(schemas, child, v, &child_path)?;
                        }
                    }
                    (None, Some(ap)) => check(schemas, ap, v, &child_path)?,
                    (None, None)
                        if props.is_some_and(|p| !p.is_empty()) && node.get("open").is_none() =>
                    {
                        return Err(format!("{child_path}: unknown property"))
                    }
                    (None, None) => {}
                }
            }
            for r in node
                .get("r")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let read_only = props
                    .and_then(|p| p.get(r))
                    .is_some_and(|c| c.get("ro") == Some(&json!(true)));
                if !map.contains_key(r) && !read_only {
                    let child_path = if path.is_empty() {
                        r.to_string()
                    } else {
                        format!("{path}.{r}")
                    };
                    return Err(format!("{child_path}: required property is missing"));
                }
            }
            Ok(())
        }
        "array" => {
            let Some(items) = value.as_array() else {
                return Err(format!("{here}: expected an array"));
            };
            let item = node.get("i").cloned().unwrap_or(json!({ "t": "any" }));
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| check(schemas, &item, v, &format!("{path}[{i}]")))
        }
        "string" => {
            let Some(s) = value.as_str() else {
                return Err(format!("{here}: expected a string"));
            };
            match node.get("e").and_then(Value::as_array) {
                Some(allowed)
                    if !allowed
                        .iter()
                        .any(|a| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(s))) =>
                {
                    Err(format!(
                        "{here}: '{s}' is not one of {}",
                        Value::Array(allowed.clone())
                    ))
                }
                _ => Ok(()),
            }
        }
        "integer" if value.as_i64().is_none() && value.as_u64().is_none() => {
            Err(format!("{here}: expected an integer"))
        }
        "number" if !value.is_number() => Err(format!("{here}: expected a number")),
        "boolean" if !value.is_boolean() => Err(format!("{here}: expected a boolean")),
        _ => Ok(()),
    }
}

/// The variant a polymorphic object's discriminator selects, if the node is polymorphic.
fn variant_of(schemas: &Value, node: &Value, map: &Map<String, Value>) -> Option<String> {
    let d = node.get("d")?;
    let property = d.get("property")?.as_str()?;
    let value = map.get(property)?.as_str()?;
    let variants = d.get("variants")?.as_object()?;
    let key = variants
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(value))?
        .1
        .as_str()?;
    // A variant's own definition carries the base's `d` too (through allOf); do not loop.
    let variant = schemas.get("definitions")?.get(key)?;
    (variant.get("d").is_none() || variant != node).then(|| key.to_string())
}
