//! Bounded previews of values: what history entries and events keep of large arguments and
//! results (the value itself when small, else a truncated preview that keeps its shape).

use serde_json::Value;

/// Largest serialized size of an argument or result value stored as is; larger ones are kept
/// as a truncated preview.
pub const MAX_RECORDED_VALUE_BYTES: usize = 16 * 1024;

/// A string as it should be stored in history, without copying more than is kept.
pub fn recordable_str(s: &str) -> Value {
    Value::String(truncate_str(s, MAX_RECORDED_VALUE_BYTES))
}

/// A value as it should be stored in history: itself when small, else a preview.
pub fn recordable(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() <= MAX_RECORDED_VALUE_BYTES => value.clone(),
        Value::String(s) => Value::String(truncate_str(s, MAX_RECORDED_VALUE_BYTES)),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        Value::Array(_) | Value::Object(_) => {
            let text = value.to_string();
            if text.len() <= MAX_RECORDED_VALUE_BYTES {
                return value.clone();
            }
            if let Value::Object(map) = value {
                // Keep the shape for objects with a few big string fields (e.g. `code`).
                let shrunk: serde_json::Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            shrink(v, MAX_RECORDED_VALUE_BYTES / map.len().max(1)),
                        )
                    })
                    .collect();
                let shrunk = Value::Object(shrunk);
                if shrunk.to_string().len() <= MAX_RECORDED_VALUE_BYTES * 2 {
                    return shrunk;
                }
            }
            serde_json::json!({
                "truncated": true,
                "bytes": text.len(),
                "preview": truncate_str(&text, MAX_RECORDED_VALUE_BYTES),
            })
        }
    }
}

fn shrink(value: &Value, budget: usize) -> Value {
    match value {
        Value::String(s) if s.len() > budget => Value::String(truncate_str(s, budget)),
        Value::Array(_) | Value::Object(_) if value.to_string().len() > budget => {
            serde_json::json!({"truncated": true, "bytes": value.to_string().len()})
        }
        _ => value.clone(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with a note of what was cut.
pub fn truncate_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [{} more bytes not kept]", &s[..cut], s.len() - cut)
}
