//! `loggate policy test`: expectations checked against the configured store
//! (contract: Command line), like `opa test` or `zed validate`.
//!
//! The file is a JSON array of
//! `{"token_id"|"user_id": "…", "object": "TYPE:ID", "permission": "…", "expect": "allow"|"deny"}`.
//! A token is decided as `serve` decides it (its validity window first); a
//! user acts in the organization of the object.

use super::authz::{Verdict, configured_policy, now_ms, token_identity, token_label, token_verdict};
use super::load_config;
use loggate_authz::{CompiledPolicy, Principal};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use serde_json::{Map, Value};
use std::path::Path;
use std::process::ExitCode;

/// Who an expectation asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Token(String),
    User(String),
}

/// One entry of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expectation {
    who: Who,
    object: ObjectRef,
    permission: Permission,
    allow: bool,
}

const FIELDS: [&str; 5] = ["token_id", "user_id", "object", "permission", "expect"];

/// `loggate policy test [--config C] EXPECT.json`.
pub(super) fn policy_test(config: &Path, file: &Path) -> ExitCode {
    let expectations = match std::fs::read_to_string(file).map_err(|e| vec![e.to_string()]).and_then(|t| parse(&t)) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                eprintln!("loggate: policy test: {}: {e}", file.display());
            }
            return ExitCode::from(2);
        }
    };
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let policy = match configured_policy(&config) {
        Ok((policy, left_out)) => {
            for e in left_out {
                eprintln!("loggate: policy entry left out: {e}");
            }
            policy
        }
        Err(e) => {
            eprintln!("loggate: policy test: {e}");
            return ExitCode::from(2);
        }
    };
    let now = now_ms();
    let mut failed = 0;
    for (i, e) in expectations.iter().enumerate() {
        let (who, verdict) = decide(&policy, e, now);
        if verdict.allowed != e.allow {
            failed += 1;
            println!(
                "FAIL expect[{i}] {who} {} {}: expected {}, got {}: {}",
                e.permission,
                e.object,
                word(e.allow),
                word(verdict.allowed),
                evidence(&verdict)
            );
        }
    }
    let n = expectations.len();
    let noun = if n == 1 { "expectation" } else { "expectations" };
    if failed == 0 {
        println!("{n} {noun}, all hold");
        ExitCode::SUCCESS
    } else {
        println!("{n} {noun}, {failed} failed");
        ExitCode::from(1)
    }
}

fn word(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

/// The verdict's lines on one line, without repeating the decision the
/// first one opens with.
fn evidence(v: &Verdict) -> String {
    let because = v.because();
    let prefix = if v.allowed { "allow: " } else { "deny: " };
    because.strip_prefix(prefix).map(str::to_owned).unwrap_or(because)
}

/// Who is asking (for the FAIL line) and the verdict.
fn decide(policy: &CompiledPolicy, e: &Expectation, now_ms: i64) -> (String, Verdict) {
    match &e.who {
        Who::Token(id) => match token_identity(policy, id) {
            None => (format!("token {id}"), Verdict::no_token(id)),
            Some(identity) => (
                format!("token {}", token_label(&identity.token_name, &identity.token_id)),
                token_verdict(policy, &identity, &e.object, e.permission, now_ms),
            ),
        },
        Who::User(user_id) => {
            // The user acting in the object's organization; an unknown
            // object has none, and `explain` says it is unknown.
            let org_id = policy.object_org(&e.object).unwrap_or_default().to_owned();
            let principal = Principal::new(user_id.clone(), org_id);
            (format!("user {user_id}"), policy.explain(&principal, &e.object, e.permission).into())
        }
    }
}

/// Reads the file: every bad entry named (`expect[2].permission: …`).
fn parse(text: &str) -> Result<Vec<Expectation>, Vec<String>> {
    let value: Value = serde_json::from_str(text).map_err(|e| vec![format!("not JSON: {e}")])?;
    let Value::Array(entries) = value else {
        return Err(vec!["the top level must be a JSON array of expectations".into()]);
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut errors = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match entry {
            Value::Object(fields) => match expectation(fields) {
                Ok(e) => out.push(e),
                Err((field, message)) => errors.push(match field {
                    Some(f) => format!("expect[{i}].{f}: {message}"),
                    None => format!("expect[{i}]: {message}"),
                }),
            },
            _ => errors.push(format!("expect[{i}]: not a JSON object")),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// One entry, or the field at fault and why.
fn expectation(fields: &Map<String, Value>) -> Result<Expectation, (Option<&str>, String)> {
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((Some(unknown.as_str()), format!("unknown field (expected one of {})", FIELDS.join(", "))));
    }
    let string = |name: &'static str| -> Result<Option<&str>, (Option<&str>, String)> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err((Some(name), "must be a non-empty string".into())),
        }
    };
    let required = |name: &'static str| string(name)?.ok_or((Some(name), "is required".into()));
    let who = match (string("token_id")?, string("user_id")?) {
        (Some(t), None) => Who::Token(t.to_owned()),
        (None, Some(u)) => Who::User(u.to_owned()),
        (Some(_), Some(_)) => return Err((None, "both token_id and user_id (give exactly one)".into())),
        (None, None) => return Err((None, "token_id or user_id is required".into())),
    };
    let object = required("object")?;
    let object: ObjectRef = object.parse().map_err(|_| {
        let types: Vec<&str> = ObjectType::ALL.iter().map(|t| t.as_str()).collect();
        (Some("object"), format!("'{object}' is not TYPE:ID with TYPE one of {}", types.join(", ")))
    })?;
    let permission = required("permission")?;
    let permission: Permission = permission.parse().map_err(|_| {
        let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        (Some("permission"), format!("unknown permission '{permission}' (expected one of {})", known.join(", ")))
    })?;
    let allow = match required("expect")? {
        "allow" => true,
        "deny" => false,
        other => return Err((Some("expect"), format!("'{other}' is not \"allow\" or \"deny\""))),
    };
    Ok(Expectation { who, object, permission, allow })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_token_and_user_expectations() {
        let e = parse(
            r#"[{"token_id": "t1", "object": "project_log:p", "permission": "update", "expect": "allow"},
                {"user_id": "u1", "object": "dataset:d", "permission": "read_acls", "expect": "deny"}]"#,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].who, Who::Token("t1".into()));
        assert_eq!(e[0].object, ObjectRef::new(ObjectType::ProjectLog, "p"));
        assert!(e[0].allow);
        assert_eq!(e[1].who, Who::User("u1".into()));
        assert_eq!(e[1].permission, Permission::ReadAcls);
        assert!(!e[1].allow);
    }

    #[test]
    fn parse_names_every_bad_entry_and_field() {
        let ok = r#"{"token_id": "t", "object": "project_log:p", "permission": "update", "expect": "allow"}"#;
        let text = format!(
            r#"[{ok},
                {{"token_id": "t", "user_id": "u", "object": "project_log:p", "permission": "update", "expect": "allow"}},
                {{"token_id": "t", "object": "project_log:p", "permission": "fly", "expect": "allow"}},
                {{"object": "project_log:p", "permission": "update", "expect": "allow"}},
                {{"token_id": "t", "object": "planet:earth", "permission": "update", "expect": "allow"}},
                {{"token_id": "t", "object": "project_log:p", "permission": "update", "expect": "maybe"}},
                {{"token_id": "t", "object": "project_log:p", "permission": "update", "expect": "allow", "why": 1}},
                {{"token_id": "t", "permission": "update", "expect": "allow"}},
                7]"#
        );
        let errors = parse(&text).unwrap_err();
        let starts: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            starts,
            [
                "expect[1]",
                "expect[2].permission",
                "expect[3]",
                "expect[4].object",
                "expect[5].expect",
                "expect[6].why",
                "expect[7].object",
                "expect[8]"
            ],
            "{errors:#?}"
        );
        assert!(errors[1].contains("'fly'") && errors[1].contains("update_acls"), "{}", errors[1]);
        assert!(parse("{").unwrap_err()[0].starts_with("not JSON"));
        assert!(parse("{}").unwrap_err()[0].contains("array"));
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn evidence_does_not_repeat_the_decision() {
        let v = Verdict {
            allowed: false,
            lines: vec!["deny: user u does not hold update".into(), "missing: update".into()],
        };
        assert_eq!(evidence(&v), "user u does not hold update; missing: update");
        let v = Verdict { allowed: true, lines: vec!["allow: acl a1".into(), "principal: user u".into()] };
        assert_eq!(evidence(&v), "acl a1; principal: user u");
    }
}
