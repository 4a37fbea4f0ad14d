//! Tool argument schemas as every client can read them, and arguments as clients send them.
//!
//! The server publishes plain schemas (no `$ref`, no `["T", "null"]`: an optional field is
//! simply not required) and accepts the string forms MCP clients, CLIs and small models
//! send for numbers, booleans and objects (`"2"`, `"true"`, `"{\"a\":1}"`). An argument that
//! still does not fit is refused with a message naming the parameter, what it expects and
//! what it got. `chat` uses the same functions for the schemas and calls of its model.

use serde_json::{Map, Value, json};

/// What to do with defaults and ranges in a plain schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// Fold them into the description (small models read descriptions, not keywords).
    Fold,
    /// Keep them as `default` / `minimum` / `maximum` keywords (forms and converters use them).
    Keep,
}

/// Which string forms to turn into the schema's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coercion {
    /// Only text into numbers, booleans, objects and arrays (what MCP clients and CLIs send).
    FromStrings,
    /// Also numbers and booleans into text where text is expected (what small models send).
    Both,
}

/// A plain object schema: `$ref`s inlined, `null` dropped from types (an optional field is
/// simply not required), annotation keywords dropped, `properties: {}` for tools without
/// arguments, and `hidden` parameters removed.
pub fn plain_schema(schema: &Map<String, Value>, hidden: &[&str], defaults: Defaults) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut properties = Map::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, prop) in props {
            if hidden.contains(&name.as_str()) {
                continue;
            }
            properties.insert(name.clone(), simplify_property(prop, &defs, 0, defaults));
        }
    }
    let required: Vec<Value> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter(|n| n.as_str().is_some_and(|n| properties.contains_key(n)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    json!({"type": "object", "properties": properties, "required": required})
}

fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .rsplit('/')
            .next()
            .and_then(|name| defs.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The non-null alternative of `anyOf`/`oneOf: [X, {"type": "null"}]`, else the schema itself.
fn non_null<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            let rest: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if rest.len() == 1 {
                return resolve(rest[0], defs);
            }
        }
    }
    schema
}

fn simplify_property(
    prop: &Value,
    defs: &Map<String, Value>,
    depth: usize,
    defaults: Defaults,
) -> Value {
    let resolved = non_null(resolve(prop, defs), defs);
    let mut out = Map::new();
    let ty = match resolved.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        _ => None,
    };
    if let Some(t) = &ty {
        out.insert("type".into(), Value::String(t.clone()));
    }
    let mut description = prop
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut notes = Vec::new();
    let min = resolved.get("minimum").and_then(Value::as_f64);
    let max = resolved.get("maximum").and_then(Value::as_f64);
    let default = prop
        .get("default")
        .or_else(|| resolved.get("default"))
        .filter(|d| !d.is_null());
    if defaults == Defaults::Keep {
        for (key, value) in [("minimum", min), ("maximum", max)] {
            if let Some(v) = value {
                let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
                out.insert(key.into(), if whole { json!(v as i64) } else { json!(v) });
            }
        }
        if let Some(d) = default {
            out.insert("default".into(), d.clone());
        }
    }
    match (min, max) {
        _ if defaults == Defaults::Keep => {}
        (Some(lo), Some(hi)) => notes.push(format!("from {} to {}", num(lo), num(hi))),
        (Some(lo), None) if lo != 0.0 => notes.push(format!("at least {}", num(lo))),
        (None, Some(hi)) => notes.push(format!("at most {}", num(hi))),
        _ => {}
    }
    if let Some(d) = default.filter(|_| defaults == Defaults::Fold) {
        notes.push(format!("default {d}"));
    }
    if !notes.is_empty() {
        let joined = notes.join(", ");
        if !description.contains(&joined) {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str(&format!("({joined})"));
        }
    }
    if !description.is_empty() {
        out.insert("description".into(), Value::String(description));
    }
    if let Some(e) = resolved.get("enum") {
        out.insert("enum".into(), e.clone());
    }
    if ty.as_deref() == Some("array")
        && let Some(items) = resolved.get("items")
        && depth < 4
    {
        out.insert(
            "items".into(),
            simplify_property(items, defs, depth + 1, defaults),
        );
    }
    if ty.as_deref() == Some("object")
        && let Some(Value::Object(props)) = resolved.get("properties")
        && depth < 4
    {
        let inner: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), simplify_property(v, defs, depth + 1, defaults)))
            .collect();
        out.insert("properties".into(), Value::Object(inner));
    }
    Value::Object(out)
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// Coerce arguments to a plain object schema (`parameters`, from [`plain_schema`]): a JSON
/// string holding the object is parsed, `"2"` becomes 2 for numbers, `"true"` true for
/// booleans, a JSON string holding an object or array is parsed where one is expected, and
/// with [`Coercion::Both`] numbers and booleans become text where text is expected. Keys the
/// schema does not offer (such as a hallucinated `session_id`) are dropped.
pub fn coerce_arguments(
    parameters: &Value,
    arguments: &Value,
    coercion: Coercion,
) -> Map<String, Value> {
    coerce_object(parameters, as_object(arguments), coercion)
}

/// [`coerce_arguments`] on an arguments object already in hand (nothing copied).
pub fn coerce_object(
    parameters: &Value,
    object: Map<String, Value>,
    coercion: Coercion,
) -> Map<String, Value> {
    let empty = Map::new();
    let props = parameters
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required = |key: &str| {
        parameters
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(key)))
    };
    object
        .into_iter()
        .filter_map(|(key, value)| {
            let prop = props.get(&key)?;
            // `null` for an optional argument means "not given", as clients and models send it.
            if value.is_null() && !required(&key) {
                return None;
            }
            let ty = prop.get("type").and_then(Value::as_str);
            Some((key, coerce_value(value, ty, coercion)))
        })
        .collect()
}

/// Arguments as an object: an object stays, a string holding one is parsed, anything else
/// is empty.
pub fn as_object(arguments: &Value) -> Map<String, Value> {
    match arguments {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

fn coerce_value(value: Value, ty: Option<&str>, coercion: Coercion) -> Value {
    match (ty, value) {
        (Some("string"), v @ (Value::Number(_) | Value::Bool(_)))
            if coercion == Coercion::FromStrings =>
        {
            v
        }
        (Some("integer"), Value::String(s)) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                json!(i)
            } else if let Ok(f) = t.parse::<f64>()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                json!(f as i64)
            } else {
                Value::String(s)
            }
        }
        (Some("integer"), Value::Number(n)) if n.as_i64().is_none() && n.as_u64().is_none() => {
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
                _ => Value::Number(n),
            }
        }
        (Some("number"), Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            _ => Value::String(s),
        },
        (Some("boolean"), Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => Value::String(s),
        },
        (Some("boolean"), Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Value::Bool(n.as_i64() == Some(1))
        }
        (Some("string"), Value::Number(n)) => Value::String(n.to_string()),
        (Some("string"), Value::Bool(b)) => Value::String(b.to_string()),
        (Some("object" | "array"), Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => Value::String(s),
        },
        (_, v) => v,
    }
}

/// The JSON type name of a value, as a schema writes it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn article(ty: &str) -> &'static str {
    match ty {
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (true or false)",
        "string" => "a string",
        "array" => "an array",
        "object" => "an object",
        "null" => "null",
        _ => "a value",
    }
}

/// Check coerced arguments against a plain object schema: every required parameter present,
/// every given one of its type (and within its range). The error names the parameter, what
/// it expects and what it got.
pub fn check_arguments(parameters: &Value, arguments: &Map<String, Value>) -> Result<(), String> {
    let props = parameters.get("properties").and_then(Value::as_object);
    let required = parameters.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        if !arguments.contains_key(name) {
            let ty = props
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("value");
            return Err(format!(
                "Missing required argument `{name}` ({}).",
                article(ty)
            ));
        }
    }
    let Some(props) = props else { return Ok(()) };
    for (name, value) in arguments {
        let Some(prop) = props.get(name) else {
            continue;
        };
        let Some(ty) = prop.get("type").and_then(Value::as_str) else {
            continue;
        };
        let got = json_type(value);
        let fits = got == ty || (ty == "number" && got == "integer");
        if !fits {
            let shown: String = value.to_string().chars().take(60).collect();
            return Err(format!(
                "Argument `{name}` must be {}, but got {} ({shown}).",
                article(ty),
                article(got)
                    .trim_start_matches("an ")
                    .trim_start_matches("a "),
            ));
        }
        if let Some(x) = value.as_f64() {
            let min = prop.get("minimum").and_then(Value::as_f64);
            let max = prop.get("maximum").and_then(Value::as_f64);
            if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                return Err(format!(
                    "Argument `{name}` must be between {} and {}, but got {}.",
                    min.map(num).unwrap_or_else(|| "-inf".into()),
                    max.map(num).unwrap_or_else(|| "inf".into()),
                    num(x)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_nulls_are_dropped_and_wrong_types_named() {
        let params = json!({
            "type": "object",
            "properties": {"code": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["code"]
        });
        let args = coerce_arguments(
            &params,
            &json!({"code": "x", "limit": null}),
            Coercion::FromStrings,
        );
        assert_eq!(Value::Object(args.clone()), json!({"code": "x"}));
        assert!(check_arguments(&params, &args).is_ok());
        // A required argument given as null is still refused, by name.
        let args = coerce_arguments(&params, &json!({"code": null}), Coercion::FromStrings);
        let err = check_arguments(&params, &args).expect_err("null code");
        assert!(err.contains("`code`") && err.contains("null"), "{err}");
        let args = coerce_arguments(
            &params,
            &json!({"code": "x", "limit": "7"}),
            Coercion::FromStrings,
        );
        assert_eq!(args["limit"], 7);
        let args = coerce_arguments(&params, &json!({"code": 5}), Coercion::FromStrings);
        let err = check_arguments(&params, &args).expect_err("a number for code");
        assert!(err.contains("`code` must be a string"), "{err}");
    }
}
