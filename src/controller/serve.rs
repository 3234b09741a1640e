//! `/healthz`, `/readyz` and `/metrics` for probes and Prometheus.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/healthz" | "/readyz" => (200, "ok".to_string()),
                        "/metrics" => {
                            let mut text = String::new();
                            match prometheus_client::encoding::text::encode(&mut text, &registry) {
                                Ok(()) => (200, text),
                                Err(e) => (500, e.to_string()),
                            }
                        }
                        _ => (404, "not found".to_string()),
                    };
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
