//! A small blocking HTTP/1 client for `--server URL`: JSON in, JSON out.
//! Requests carry the API token of `QLEDGER_TOKEN`, if set. `https://` URLs
//! trust the CA certificates of `QLEDGER_CA_CERT` (PEM) if set, else the
//! public web roots, and present the client certificate of
//! `QLEDGER_CLIENT_CERT` / `QLEDGER_CLIENT_KEY` if set (mutual TLS).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The environment variable holding the API token `--server` requests send.
pub(crate) const TOKEN_ENV: &str = "QLEDGER_TOKEN";
const CA_ENV: &str = "QLEDGER_CA_CERT";
const CLIENT_CERT_ENV: &str = "QLEDGER_CLIENT_CERT";
const CLIENT_KEY_ENV: &str = "QLEDGER_CLIENT_KEY";

/// How long one request may take (intake may wait for the projector).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A qledger server, reached over HTTPS or plain HTTP.
#[derive(Debug)]
pub(crate) struct Remote {
    base: String,
    /// For the whole exchange: headers and body.
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Runtime,
    /// `Bearer …`, from [`TOKEN_ENV`].
    authorization: Option<header::HeaderValue>,
}

/// A response: status and JSON body (a non-JSON body becomes a string).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The problem's `detail` (or the whole body) for an error message.
    pub fn detail(&self) -> String {
        match self.body.get("detail").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            None => self.body.to_string(),
        }
    }
}

impl Remote {
    /// `url` is `http://HOST:PORT` (a path prefix is kept).
    pub fn new(url: &str) -> Result<Remote> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--server must be an https:// or http:// URL, got {url:?}");
        }
        base.parse::<hyper::Uri>()
            .with_context(|| format!("--server {url:?} is not a valid URL"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client runtime")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let authorization = match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => {
                let mut value = header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| anyhow!("{TOKEN_ENV} is not a valid token"))?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(Remote {
            base,
            timeout: REQUEST_TIMEOUT,
            client,
            runtime,
            authorization,
        })
    }

    /// Gives up on a request (headers and body) after `timeout`.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub fn with_timeout(mut self, timeout: Duration) -> Remote {
        self.timeout = timeout;
        self
    }

    pub fn get(&self, path_and_query: &str) -> Result<Answer> {
        self.send(Method::GET, path_and_query, None)
    }

    /// GET with an `Accept` of `accept` (FHIR, say); the body as JSON.
    pub fn get_as(&self, path_and_query: &str, accept: &str) -> Result<Answer> {
        let (status, bytes) = self.exchange(
            Method::GET,
            path_and_query,
            "application/json",
            accept,
            Vec::new(),
        )?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    pub fn post(&self, path_and_query: &str, body: &Value) -> Result<Answer> {
        self.send(
            Method::POST,
            path_and_query,
            Some(serde_json::to_vec(body).context("encoding the request")?),
        )
    }

    /// POSTs `input` as it is read and hands each piece of the answer to
    /// `out` as it arrives: bounded memory both ways. `progress` is told how
    /// many bytes were sent. An error status comes back as an error.
    pub fn post_streaming(
        &self,
        path_and_query: &str,
        content_type: &str,
        mut input: impl std::io::Read + Send + 'static,
        progress: impl Fn(u64) + Send + 'static,
        mut out: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        // The file is read on its own thread; the channel bounds what waits.
        let reader = std::thread::spawn(move || {
            let mut sent = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        sent += n as u64;
                        progress(sent);
                        let frame = Frame::data(Bytes::copy_from_slice(&buf[..n]));
                        if tx.blocking_send(Ok(frame)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path_and_query}", self.base))
            .header(header::CONTENT_TYPE, content_type);
        if let Some(auth) = &self.authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(http_body_util::combinators::BoxBody::new(StreamBody::new(
                stream,
            )))
            .context("building the request")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, http_body_util::combinators::BoxBody<Bytes, std::io::Error>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let route = path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let result = self.runtime.block_on(async {
            let response = client
                .request(request)
                .await
                .with_context(|| format!("POST {}{route}", self.base))?;
            let status = response.status();
            let mut body = response.into_body();
            if !status.is_success() {
                let bytes = body.collect().await?.to_bytes();
                bail!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    out(&data)?;
                }
            }
            Ok(())
        });
        let _ = reader.join();
        result
    }

    fn send(&self, method: Method, path_and_query: &str, body: Option<Vec<u8>>) -> Result<Answer> {
        let (status, bytes) = self.exchange(
            method,
            path_and_query,
            "application/json",
            "application/json, application/problem+json",
            body.unwrap_or_default(),
        )?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    /// POSTs `body` as `content_type` and returns the status and the raw
    /// answer (the online check's XML, in its own encoding).
    pub fn post_bytes(
        &self,
        path_and_query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let (status, bytes) = self.exchange(
            Method::POST,
            path_and_query,
            content_type,
            content_type,
            body,
        )?;
        Ok((status, bytes.to_vec()))
    }

    fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes)> {
        let uri = format!("{}{path_and_query}", self.base);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::ACCEPT, accept)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(auth) = &self.authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("cannot build a request for {}", self.base))?;
        // The query string may hold insured numbers: errors name the route only.
        let route = path_and_query.split('?').next().unwrap_or_default();
        let what = || format!("{method} {}{route}", self.base);
        let timeout = self.timeout;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, bytes))
        };
        self.runtime.block_on(async {
            // One deadline for headers and body: a peer stalling mid-body
            // must not hold the caller for ever.
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| anyhow!("timed out after {timeout:?}"))
                .and_then(|r| r)
                .with_context(what)
        })
    }
}

/// The client's TLS settings, from the environment.
fn tls_config() -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os(CA_ENV) {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(&path)
                .with_context(|| format!("{CA_ENV}: cannot read {}", path.to_string_lossy()))?
            {
                roots
                    .add(cert.with_context(|| format!("{CA_ENV}: not PEM certificates"))?)
                    .with_context(|| format!("{CA_ENV}: not a CA certificate"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::http::tls::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    match (
        std::env::var_os(CLIENT_CERT_ENV),
        std::env::var_os(CLIENT_KEY_ENV),
    ) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("{CLIENT_CERT_ENV}: {}", cert.to_string_lossy()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .with_context(|| format!("{CLIENT_KEY_ENV}: {}", key.to_string_lossy()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key do not match")
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => bail!("set both {CLIENT_CERT_ENV} and {CLIENT_KEY_ENV}, or neither"),
    }
}

/// Percent-encodes a query or path value: UTF-8, with unreserved characters
/// and `:` (legal in both, and frequent in instants) kept.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the pairs whose value is present (empty if none).
pub(crate) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_kana_and_reserved_characters() {
        assert_eq!(encode("01130012"), "01130012");
        assert_eq!(encode("あ"), "%E3%81%82");
        assert_eq!(
            encode("2024-04-03T09:00:00+09:00"),
            "2024-04-03T09:00:00%2B09:00"
        );
        assert_eq!(encode("a b&c=d/e"), "a%20b%26c%3Dd%2Fe");
    }

    #[test]
    fn query_leaves_out_absent_values() {
        assert_eq!(query(&[("a", Some("1".into())), ("b", None)]), "?a=1");
        assert_eq!(query(&[("b", None)]), "");
    }
}
