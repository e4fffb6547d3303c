//! TypeScript declarations of the API's schemas, generated from its OpenAPI description, for the web UI
//! (`ui/api.d.ts`): the UI's shapes are the API's, not a second copy kept by hand. A test compares the
//! committed file with what this generates (`SHOAL_BLESS=1 cargo test -p shoal-api --test ui` rewrites
//! it after a change of the contract).
//!
//! It covers what `utoipa` emits for our types: objects with required and optional properties, `$ref`s,
//! arrays, maps, string enums, `oneOf`/`anyOf`/`allOf`, and nullable types (OpenAPI 3.1's
//! `type: [T, "null"]`). Anything else becomes `unknown`, never a guess.

use serde_json::Value;

/// The declarations of every schema in `doc` (an OpenAPI document as JSON), sorted by name.
pub fn declarations(doc: &Value) -> String {
    let mut out = String::from(
        "// Generated from the API's OpenAPI description (crates/shoal-api/src/typescript.rs); do not edit.\n\
         // Rewrite it with: SHOAL_BLESS=1 cargo test -p shoal-api --test ui\n\n",
    );
    let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) else { return out };
    let mut names: Vec<&String> = schemas.keys().collect();
    names.sort();
    for name in names {
        let schema = &schemas[name];
        if let Some(d) = schema.get("description").and_then(Value::as_str) {
            out.push_str(&doc_comment(d, ""));
        }
        match object_body(schema, "") {
            Some(body) => out.push_str(&format!("export interface {name} {body}\n\n")),
            None => out.push_str(&format!("export type {name} = {};\n\n", ty(schema, ""))),
        }
    }
    out
}

fn doc_comment(text: &str, indent: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 {
        return format!("{indent}/** {} */\n", lines[0].replace("*/", "*\\/"));
    }
    let mut s = format!("{indent}/**\n");
    for l in lines {
        s.push_str(&format!("{indent} * {}\n", l.replace("*/", "*\\/")).replace(" \n", "\n"));
    }
    s.push_str(&format!("{indent} */\n"));
    s
}

/// `{ ... }` for a plain object schema; `None` for anything else.
fn object_body(schema: &Value, indent: &str) -> Option<String> {
    let props = schema.get("properties")?.as_object()?;
    if schema.get("oneOf").is_some() || schema.get("allOf").is_some() {
        return None;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
    let inner = format!("{indent}  ");
    let mut s = String::from("{\n");
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort();
    for k in keys {
        let p = &props[k];
        if let Some(d) = p.get("description").and_then(Value::as_str) {
            s.push_str(&doc_comment(d, &inner));
        }
        let opt = if required.contains(&k.as_str()) { "" } else { "?" };
        s.push_str(&format!("{inner}{}{opt}: {};\n", key(k), ty(p, &inner)));
    }
    s.push_str(indent);
    s.push('}');
    Some(s)
}

fn key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.starts_with(|c: char| c.is_ascii_digit()) {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

/// The TypeScript type of a schema.
fn ty(schema: &Value, indent: &str) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or("unknown").to_string();
    }
    for (k, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
        if let Some(list) = schema.get(k).and_then(Value::as_array) {
            let parts: Vec<String> = list.iter().map(|s| ty(s, indent)).collect();
            let mut joined = parts.join(sep);
            if let Some(props) = object_body(&strip(schema, k), indent) {
                joined = format!("({joined}) & {props}");
            }
            return if parts.len() > 1 { format!("({joined})") } else { joined };
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let parts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return parts.join(" | ");
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return object_body(schema, indent).unwrap_or_else(|| "unknown".into());
    }
    let parts: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "string" => "string".into(),
            "integer" | "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => match schema.get("prefixItems").and_then(Value::as_array) {
                Some(tuple) => format!("[{}]", tuple.iter().map(|s| ty(s, indent)).collect::<Vec<_>>().join(", ")),
                None => {
                    let item = schema.get("items").map_or_else(|| "unknown".into(), |s| ty(s, indent));
                    if item.contains(' ') { format!("({item})[]") } else { format!("{item}[]") }
                }
            },
            "object" => match object_body(schema, indent) {
                Some(b) => b,
                None => match schema.get("additionalProperties") {
                    Some(v @ Value::Object(_)) => format!("Record<string, {}>", ty(v, indent)),
                    _ => "Record<string, unknown>".into(),
                },
            },
            _ => "unknown".into(),
        })
        .collect();
    parts.join(" | ")
}

fn strip(schema: &Value, key: &str) -> Value {
    let mut s = schema.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove(key);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_optionals_refs_enums_unions_and_nullables() {
        let doc = serde_json::json!({"components": {"schemas": {
            "A": {"type": "object", "description": "An a.", "required": ["id"], "properties": {
                "id": {"type": "string"}, "n": {"type": ["integer", "null"]},
                "b": {"$ref": "#/components/schemas/B"}, "list": {"type": "array", "items": {"type": "number"}}}},
            "B": {"type": "string", "enum": ["x", "y"]},
            "C": {"oneOf": [{"$ref": "#/components/schemas/A"}, {"type": "boolean"}]}
        }}});
        let ts = declarations(&doc);
        assert!(ts.contains("/** An a. */\nexport interface A {\n  b?: B;\n  id: string;\n  list?: number[];\n  n?: number | null;\n}"), "{ts}");
        assert!(ts.contains("export type B = \"x\" | \"y\";"), "{ts}");
        assert!(ts.contains("export type C = (A | boolean);"), "{ts}");
    }
}
