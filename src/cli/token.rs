//! `loggate token new`: a fresh token and its policy-file entry, optionally
//! scoped (`--scope`, `--cidr`) and short-lived (`--ttl`).

use loggate_model::doc::ServiceToken;
use loggate_model::{Cidr, Scope, ScopeGrant, Timestamp, TokenDigest};
use std::process::ExitCode;

pub(super) struct NewToken {
    pub name: String,
    pub org_id: String,
    pub service_account_id: String,
    pub scope: Vec<String>,
    pub cidr: Vec<String>,
    pub ttl: Option<String>,
}

pub(super) fn token_new(args: &NewToken) -> ExitCode {
    let token = loggate_model::token::generate();
    let entry = match entry(args, TokenDigest::of(&token), crate::clock::now_ms()) {
        Ok(entry) => entry,
        Err(e) => {
            eprintln!("loggate: {e}");
            return ExitCode::from(2);
        }
    };
    println!("token:  {token}");
    println!("sha256: {}", entry.token_sha256.to_hex());
    println!("service_tokens entry:\n{}", serde_json::to_string_pretty(&entry).expect("json"));
    ExitCode::SUCCESS
}

/// The entry the arguments describe, for a token with digest `digest`.
fn entry(args: &NewToken, digest: TokenDigest, now_ms: i64) -> Result<ServiceToken, String> {
    let mut t =
        ServiceToken::new(uuid::Uuid::new_v4().to_string(), &args.name, &args.org_id, &args.service_account_id, digest);
    let grants = args.scope.iter().map(|g| grant(g)).collect::<Result<Vec<_>, _>>()?;
    let cidrs = args
        .cidr
        .iter()
        .map(|c| c.parse::<Cidr>().map_err(|e| format!("--cidr: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let scope =
        Scope { grants: (!grants.is_empty()).then_some(grants), client_cidrs: (!cidrs.is_empty()).then_some(cidrs) };
    t.scope = (scope != Scope::default()).then_some(scope);
    if let Some(ttl) = &args.ttl {
        let ttl = crate::config::duration::parse_duration(ttl).map_err(|e| format!("--ttl: {e}"))?;
        let ms = i64::try_from(ttl.as_millis()).map_err(|_| "--ttl: too long".to_owned())?;
        t.expires_at = Some(Timestamp::from_unix_ms(now_ms.saturating_add(ms)));
    }
    Ok(t)
}

/// `TYPE:ID:PERM[,PERM…]`.
fn grant(arg: &str) -> Result<ScopeGrant, String> {
    let usage = || format!("--scope '{arg}' is not TYPE:ID:PERMISSION[,PERMISSION…]");
    let (object, permissions) = arg.rsplit_once(':').ok_or_else(usage)?;
    let object: loggate_model::types::ObjectRef = object.parse().map_err(|_| usage())?;
    let permissions = permissions
        .split(',')
        .map(|p| p.trim().parse().map_err(|_| format!("--scope '{arg}': '{p}' is not a permission")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ScopeGrant { object_type: object.object_type, object_id: object.id, permissions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_model::types::{ObjectType, Permission};

    fn args(scope: &[&str], cidr: &[&str], ttl: Option<&str>) -> NewToken {
        NewToken {
            name: "ci".into(),
            org_id: "o".into(),
            service_account_id: "u".into(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            cidr: cidr.iter().map(|s| s.to_string()).collect(),
            ttl: ttl.map(Into::into),
        }
    }

    #[test]
    fn scope_cidr_and_ttl_make_a_narrow_entry() {
        let t =
            entry(&args(&["project_log:p1:update,read"], &["10.0.0.0/8"], Some("24h")), TokenDigest::of("t"), 1_000)
                .unwrap();
        let scope = t.scope.unwrap();
        let g = &scope.grants.unwrap()[0];
        assert_eq!((g.object_type, g.object_id.as_str()), (ObjectType::ProjectLog, "p1"));
        assert_eq!(g.permissions, vec![Permission::Update, Permission::Read]);
        assert_eq!(scope.client_cidrs.unwrap()[0].to_string(), "10.0.0.0/8");
        assert_eq!(t.expires_at, Some(Timestamp::from_unix_ms(1_000 + 86_400_000)));
        let plain = entry(&args(&[], &[], None), TokenDigest::of("t"), 0).unwrap();
        assert!(plain.scope.is_none() && plain.expires_at.is_none());
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(entry(&args(&["project_log:p1"], &[], None), TokenDigest::of("t"), 0).unwrap_err().contains("--scope"));
        assert!(
            entry(&args(&["project_log:p1:write"], &[], None), TokenDigest::of("t"), 0).unwrap_err().contains("write")
        );
        assert!(entry(&args(&[], &["10.0.0.0/40"], None), TokenDigest::of("t"), 0).unwrap_err().contains("--cidr"));
        assert!(entry(&args(&[], &[], Some("soon")), TokenDigest::of("t"), 0).unwrap_err().contains("--ttl"));
    }
}
