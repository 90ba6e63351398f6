//! Why a record is not an order: the field path and the rule it broke, and a short kind for
//! counting rejections with a bounded set of labels.

use std::fmt;

/// Why a record is not an order: the field path (`.` for the record itself) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Path of the offending field, such as `items[0].total_price`.
    pub path: String,
    /// The rule that was broken, in words.
    pub rule: String,
}

impl Rejection {
    pub(crate) fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            rule: rule.into(),
        }
    }

    /// A short, stable name for the kind of rejection, used to count rejections by reason
    /// with a bounded set of labels.
    pub fn kind(&self) -> &'static str {
        kind_of_rule(&self.rule)
    }
}

/// The kind of rejection a rule names (see [`Rejection::kind`]).
pub fn kind_of_rule(rule: &str) -> &'static str {
    let kinds = [
        ("PostgreSQL refused", "postgres_refused"),
        ("record is larger", "too_large"),
        ("empty record", "empty"),
        ("not valid UTF-8", "not_utf8"),
        ("missing field", "missing_field"),
        ("unknown field", "unknown_field"),
        ("duplicate field", "duplicate_field"),
        ("invalid type", "wrong_type"),
        ("invalid value", "wrong_type"),
        ("invalid length", "wrong_type"),
        ("trailing", "not_json"),
    ];
    if let Some((_, kind)) = kinds.iter().find(|(start, _)| rule.starts_with(start)) {
        return kind;
    }
    if rule.contains(" at line ") {
        "not_json"
    } else {
        "field_rule"
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for Rejection {}

/// serde reports a missing or repeated field at the object that holds it; the contract wants
/// the field's own path, such as `payment.bank`.
pub(super) fn path_with_named_field(path: &str, message: &str) -> String {
    let field = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match field {
        Some(field) if path == "." => field.to_string(),
        Some(field) => format!("{path}.{field}"),
        None => path.to_string(),
    }
}

/// serde's messages for unknown fields list every expected field; the path already says where,
/// so the list is cut to keep rejection reasons short.
pub(super) fn shorten_serde_message(message: &str) -> String {
    match message.find(", expected one of") {
        Some(cut) => {
            let tail = message
                .find(" at line")
                .map(|at| &message[at..])
                .unwrap_or("");
            format!("{}{tail}", &message[..cut])
        }
        None => message.to_string(),
    }
}
