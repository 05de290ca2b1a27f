//! `loggate serve`: load the config, start the runtime, run until a signal.

use super::load_config;
use std::process::ExitCode;

pub(super) fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init(config.log.format);
    let env = |k: &str| std::env::var(k).ok();
    let upstream_token = match config.upstream_token(env) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("loggate: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in config.warnings() {
        tracing::warn!("{warning}");
        eprintln!("loggate: {warning}");
    }
    let admin_token = config.admin_token(env);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loggate: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(crate::server::run(config, upstream_token, admin_token));
    // Buffered access lines reach stderr before the process exits.
    crate::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "loggate stopped");
            eprintln!("loggate: {e:#}");
            ExitCode::from(1)
        }
    }
}
