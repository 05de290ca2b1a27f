//! Realistic `/logs3` bodies, by shape: the one definition the crate's
//! `json_scan` bench, the workspace's `inspect` and `hotpath` benches and
//! `examples/bodies.rs` (what `benches/load.sh` sends) all include, so
//! their figures compare.

#![allow(dead_code)]

/// The bodies the load script and the criterion benches compare, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// LLM spans as the SDKs send them: multi-line prompts and completions
    /// (`\n`, `\"`), non-ASCII text raw (the JS SDK) and as `\uXXXX`
    /// escapes with surrogate pairs (the Python SDK's `ensure_ascii`),
    /// nested metadata, numbers, span attributes; ~1 KiB a row.
    Llm,
    /// Code-heavy completions: an escape every ~12 bytes.
    EscapeDense,
    /// One line of plain ASCII: the friendly case.
    Plain,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Llm, Shape::EscapeDense, Shape::Plain];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Llm => "llm",
            Shape::EscapeDense => "escape_dense",
            Shape::Plain => "plain",
        }
    }

    pub fn parse(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A `/logs3` body of `rows` rows of `shape`, all written to `project_id`'s log.
pub fn logs3_shaped(shape: Shape, rows: usize, project_id: &str) -> Vec<u8> {
    let mut out = String::from("{\"rows\":[");
    for i in 0..rows {
        if i > 0 {
            out.push(',');
        }
        match shape {
            // Odd rows as the Python SDK writes them (ASCII only), even rows as the JS SDK.
            Shape::Llm => llm_row(&mut out, i, project_id, i % 2 == 1),
            Shape::EscapeDense => escape_dense_row(&mut out, i, project_id),
            Shape::Plain => plain_row(&mut out, i, project_id),
        }
    }
    out.push_str("],\"api_version\":2}");
    debug_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    out.into_bytes()
}

/// Appends `s` as a JSON string: `ascii_only` escapes every non-ASCII
/// character as `\uXXXX` (UTF-16, so astral ones become surrogate pairs),
/// as Python's `json.dumps` does by default; otherwise they stay raw, as in
/// `JSON.stringify`.
fn push_str(out: &mut String, s: &str, ascii_only: bool) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("string write"),
            c if ascii_only && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(out, "\\u{u:04x}").expect("string write");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_field(out: &mut String, key: &str, value: &str, ascii_only: bool) {
    push_str(out, key, true);
    out.push(':');
    push_str(out, value, ascii_only);
}

/// The fields every row starts with: ids and its target.
fn push_ids(out: &mut String, i: usize, project_id: &str) {
    use std::fmt::Write;
    write!(
        out,
        "{{\"id\":\"5f0c2c1e-8d0b-4c55-9a4f-{i:012}\",\"span_id\":\"a1b2c3d4-e5f6-4a7b-8c9d-{i:012}\",\
         \"root_span_id\":\"0e9d8c7b-6a59-4483-9271-605f4e3d2c1b\",\
         \"span_parents\":[\"0e9d8c7b-6a59-4483-9271-605f4e3d2c1b\"],\
         \"project_id\":\"{project_id}\",\"log_id\":\"g\",\"created\":\"2026-11-25T17:59:27.123Z\","
    )
    .expect("string write");
}

const PROMPTS: [&str; 4] = [
    "Résume ce ticket pour l'équipe « plateforme » :\n- le déploiement a échoué à 03:12\n- l'alerte \"disk full\" s'est déclenchée deux fois\nRéponds en français, en trois puces.",
    "以下のログを要約してください。\nエラー: \"connection reset by peer\"\n再試行: 3 回 🚀\n原因と対策を日本語で。",
    "Why does `SELECT * FROM orders WHERE status = \"open\"` take 4 s?\nThe table has 12M rows; EXPLAIN says Seq Scan.\nSuggest an index — keep it short ✅",
    "Übersetze ins Deutsche: \"The rollout is paused until the on-call engineer confirms.\"\nBehalte die Anführungszeichen bei. 👍",
];

const COMPLETIONS: [&str; 4] = [
    "• Échec du déploiement à 03:12 (rollback automatique).\n• Alerte « disk full » déclenchée 2× sur le nœud db-2.\n• Action : purger les journaux et augmenter le volume à 200 Go.",
    "要約：ピアによる接続リセットが3回発生しました。\n原因：ロードバランサーのアイドルタイムアウト（60秒）。\n対策：keep-alive を 30 秒に設定してください。✔️",
    "Add a partial index: `CREATE INDEX orders_open ON orders (created_at) WHERE status = 'open';`\nThe planner then reads ~40k rows instead of 12M — expect < 50 ms.",
    "\"Der Rollout ist pausiert, bis die Bereitschaft bestätigt.\"\nHinweis: „Bereitschaft“ = on-call engineer. 😊",
];

/// One LLM span row, ~1 KiB.
fn llm_row(out: &mut String, i: usize, project_id: &str, ascii_only: bool) {
    use std::fmt::Write;
    push_ids(out, i, project_id);
    let k = i % PROMPTS.len();
    out.push_str("\"input\":{\"messages\":[{");
    push_field(out, "role", "system", ascii_only);
    out.push(',');
    push_field(
        out,
        "content",
        "You are a careful assistant.\nAnswer in the user's language; quote \"exact\" error text.",
        ascii_only,
    );
    out.push_str("},{");
    push_field(out, "role", "user", ascii_only);
    out.push(',');
    push_field(out, "content", PROMPTS[k], ascii_only);
    out.push_str("}]},");
    push_field(out, "output", COMPLETIONS[k], ascii_only);
    write!(
        out,
        ",\"metadata\":{{\"model\":\"gpt-4o-2024-08-06\",\"temperature\":0.2,\"top_p\":1,\"seed\":{i},\
         \"request\":{{\"retries\":0,\"stream\":false,\"tools\":[{{\"name\":\"search_docs\",\"args\":{{\"k\":5,\"filters\":{{\"lang\":[\"fr\",\"ja\"]}}}}}}]}},\
         \"user\":{{\"id\":\"u-{i}\",\"plan\":\"team\"}}}},\
         \"metrics\":{{\"start\":1764093567.123,\"end\":1764093568.4567,\"prompt_tokens\":{},\"completion_tokens\":{},\
         \"tokens\":{},\"cost_usd\":1.25e-3,\"time_to_first_token\":0.318}},\
         \"span_attributes\":{{\"name\":\"chat.completions\",\"type\":\"llm\",\"exec_counter\":{i}}},\
         \"tags\":[\"support\",\"i18n\"],\"_is_merge\":false}}",
        112 + k,
        41 + k,
        153 + 2 * k
    )
    .expect("string write");
}

/// A code-completion row: quotes, backslashes and newlines every few bytes.
fn escape_dense_row(out: &mut String, i: usize, project_id: &str) {
    push_ids(out, i, project_id);
    let code = "    let path = \"C:\\build\\out\";\n    println!(\"wrote {} to {}\", n, path);\n";
    let completion = code.repeat(11);
    out.push_str("\"input\":{\"messages\":[{");
    push_field(out, "role", "user", true);
    out.push(',');
    push_field(out, "content", "Escape this:\n\"a\\tb\"\n\"c\\nd\"", true);
    out.push_str("}]},");
    push_field(out, "output", &completion, true);
    out.push_str(",\"metadata\":{\"model\":\"code-x\"},\"metrics\":{\"tokens\":321}}");
}

/// One line of plain ASCII (the friendly case).
fn plain_row(out: &mut String, i: usize, project_id: &str) {
    push_ids(out, i, project_id);
    let lorem = "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ";
    push_field(out, "input", &lorem.repeat(4), true);
    out.push(',');
    push_field(out, "output", &lorem.repeat(3), true);
    out.push_str(",\"metadata\":{\"model\":\"gpt-4o-mini\"},\"metrics\":{\"tokens\":153}}");
}
