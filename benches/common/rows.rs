//! The span row `benches/hotpath.rs` inspects and authorizes in batches of
//! 1 to 10,000 (about 1 KiB, one shape, built with serde_json). The shaped
//! bodies (LLM-like, escape-dense, plain) are in
//! `crates/inspect/benches/common/rows.rs`.

#![allow(dead_code)]

use serde_json::{Value, json};

/// One span row written to `project_id`'s log: ids, a chat input, an
/// output, metadata and metrics; about 1 KiB serialized.
pub fn row(i: usize, project_id: &str) -> Value {
    json!({
        "id": format!("5f0c2c1e-8d0b-4c55-9a4f-{i:012}"),
        "span_id": format!("a1b2c3d4-e5f6-4a7b-8c9d-{i:012}"),
        "root_span_id": "0e9d8c7b-6a59-4483-9271-605f4e3d2c1b",
        "span_parents": ["0e9d8c7b-6a59-4483-9271-605f4e3d2c1b"],
        "project_id": project_id,
        "log_id": "g",
        "created": "2026-11-25T17:59:27.123Z",
        "_is_merge": false,
        "input": {"messages": [
            {"role": "system", "content": "You are a helpful assistant that answers questions about the \
                company's internal documentation concisely."},
            {"role": "user", "content": format!("How do I rotate the API key for service #{i}? \
                Please include the CLI command and mention whether the \"old\" key keeps working.")}
        ]},
        "output": "Run `svc keys rotate --service <name>`; the old key stays valid for 24 hours \
            so deployments can roll over.\nAfter that it is revoked automatically.",
        "metadata": {"model": "gpt-4o-mini", "temperature": 0.2, "user_id": "u-1842", "env": "prod"},
        "metrics": {"start": 1764093567.123, "end": 1764093568.456, "prompt_tokens": 112,
                    "completion_tokens": 41, "tokens": 153},
        "span_attributes": {"name": "chat.completions", "type": "llm"},
        "tags": ["support", "keys"]
    })
}

/// A `/logs3` body of `rows` rows, all written to `project_id`'s log.
pub fn logs3_body(rows: usize, project_id: &str) -> Vec<u8> {
    let rows: Vec<Value> = (0..rows).map(|i| row(i, project_id)).collect();
    serde_json::to_vec(&json!({"rows": rows, "api_version": 2})).expect("serializable")
}
