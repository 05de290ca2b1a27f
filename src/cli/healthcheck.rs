//! `loggate healthcheck --url`: a tiny HTTP probe for container HEALTHCHECKs.

use std::process::ExitCode;

pub(super) fn healthcheck(url: &str, timeout: std::time::Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loggate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(async { tokio::time::timeout(timeout, probe(url)).await }) {
        Ok(Ok(status)) if status.is_success() => {
            println!("ok: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            eprintln!("loggate: {url} answered {status}");
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!("loggate: {url}: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("loggate: {url}: no answer within {timeout:?}");
            ExitCode::from(1)
        }
    }
}

/// One plain-HTTP GET (the admin listener has no TLS).
async fn probe(url: &str) -> anyhow::Result<http::StatusCode> {
    let uri: http::Uri = url.parse()?;
    anyhow::ensure!(uri.scheme_str() == Some("http"), "only http:// URLs can be probed");
    let host = uri.host().ok_or_else(|| anyhow::anyhow!("URL has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(http::header::HOST, uri.authority().map(|a| a.as_str()).unwrap_or(host))
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}
