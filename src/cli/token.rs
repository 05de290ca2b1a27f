//! `loggate token new`.

use loggate_model::TokenDigest;
use std::process::ExitCode;

pub(super) fn token_new(name: &str, org_id: &str, service_account_id: &str) -> ExitCode {
    let token = loggate_model::token::generate();
    let digest = TokenDigest::of(&token).to_hex();
    let entry = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": name,
        "org_id": org_id,
        "service_account_id": service_account_id,
        "token_sha256": digest,
        "expires_at": null,
    });
    println!("token:  {token}");
    println!("sha256: {digest}");
    println!("service_tokens entry:\n{}", serde_json::to_string_pretty(&entry).expect("json"));
    ExitCode::SUCCESS
}
