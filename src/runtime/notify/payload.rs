//! What a notice looks like on the wire.

use super::Notice;
use serde_json::{Value, json};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"text": "…"}`: Slack's incoming webhooks, and the many chat tools
    /// that accept the same.
    Slack,
    /// Every field, for a receiver of one's own.
    Json,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "slack" => Some(Format::Slack),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

pub fn body(format: Format, n: &Notice) -> Value {
    match format {
        Format::Slack => json!({
            "text": format!("[{}] {}", n.cluster, n.text),
        }),
        Format::Json => json!({
            "cluster": n.cluster,
            "kind": n.kind.name(),
            "at": n.at.to_rfc3339(),
            "op_id": n.op_id,
            "text": n.text,
        }),
    }
}
