//! JSON in the exact text form PostgreSQL prints a `jsonb` value in (`jsonb_out`): object keys
//! ordered by length, then bytewise; `", "` and `": "` as separators; only `"`, `\`, and
//! control characters escaped.
//!
//! Orders are served in this form, so the bytes HTTP returns are the same whether the order came
//! from Kafka a moment ago or from `body::text` in PostgreSQL after a restart, and a restore or a
//! lookup in PostgreSQL serves the text as it comes, without parsing it again.

use std::fmt::Write as _;

use serde_json::Value;

/// Writes `value` as PostgreSQL's `jsonb_out` would.
pub fn write_jsonb_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_jsonb_text(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
            entries.sort_by(|(left, _), (right, _)| {
                left.len()
                    .cmp(&right.len())
                    .then_with(|| left.as_bytes().cmp(right.as_bytes()))
            });
            out.push('{');
            for (index, (key, field)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_jsonb_text(field, out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: Value) -> String {
        let mut out = String::new();
        write_jsonb_text(&value, &mut out);
        out
    }

    #[test]
    fn keys_go_by_length_then_bytes() {
        let value = json!({"bb": 1, "a": [1, "x"], "ab": {"zz": true, "y": null}, "B": -5});
        assert_eq!(
            text(value),
            r#"{"B": -5, "a": [1, "x"], "ab": {"y": null, "zz": true}, "bb": 1}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_postgres_does() {
        let value = json!("q\"b\\n\nt\tc\u{1}d\u{7f}é/<");
        assert_eq!(text(value), "\"q\\\"b\\\\n\\nt\\tc\\u0001d\u{7f}é/<\"");
        assert_eq!(text(json!({})), "{}");
        assert_eq!(text(json!([])), "[]");
    }
}
