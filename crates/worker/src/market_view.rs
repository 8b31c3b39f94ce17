//! The market a worker would join, as a client's `GET /v1/models` shows it: the coefficients of
//! the workers serving a model and their load, for `cocoon-worker estimate --market-from`. One
//! plain HTTP request (a client's API on this machine or network), bounded in time and size;
//! the reading of the answer is [`estimate::market_from_models`].

use std::time::Duration;

use bytes::Bytes;
use cocoon_market::Coefficient;
use http_body_util::{BodyExt, Empty, Limited};

use crate::WorkerError;
use crate::estimate;

/// How long the whole request may take.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(10);

/// The largest model list read.
pub const MAX_MODEL_LIST_BYTES: usize = 8 << 20;

/// The coefficients of the workers serving `model` on the network whose client API is at `url`
/// (`http://HOST:PORT`), and their load when the list gives it.
pub async fn fetch_market(
    url: &str,
    model: &str,
) -> Result<(Vec<Coefficient>, Option<f64>), WorkerError> {
    let body = fetch_models(url).await?;
    estimate::market_from_models(&body, model)
}

/// `GET {url}/v1/models`, within [`FETCH_DEADLINE`] and [`MAX_MODEL_LIST_BYTES`].
pub async fn fetch_models(url: &str) -> Result<Bytes, WorkerError> {
    let failed = |detail: String| WorkerError::MarketFetch {
        url: url.to_owned(),
        detail,
    };
    let uri: hyper::Uri = format!("{}/v1/models", url.trim_end_matches('/'))
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| failed(e.to_string()))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let fetch = async {
        let response = client
            .get(uri.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status())));
        }
        Limited::new(response.into_body(), MAX_MODEL_LIST_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| failed(e.to_string()))
    };
    tokio::time::timeout(FETCH_DEADLINE, fetch)
        .await
        .map_err(|_| failed(format!("no answer within {} s", FETCH_DEADLINE.as_secs())))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one connection with `answer` after reading the request head.
    async fn serve_once(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let _ = conn.read(&mut head).await;
            let _ = conn.write_all(&answer).await;
            let _ = conn.shutdown().await;
        });
        format!("http://{addr}")
    }

    fn http_ok(body: &[u8]) -> Vec<u8> {
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body);
        answer
    }

    #[tokio::test]
    async fn reads_the_models_coefficients_and_load() {
        let list = br#"{"data":[{"id":"m","workers":[{"coefficient":900},{"coefficient":1100}],"market":{"utilisation":0.25}}]}"#;
        let url = serve_once(http_ok(list)).await;
        let (coefficients, load) = fetch_market(&url, "m").await.unwrap();
        let raw: Vec<u32> = coefficients.iter().map(|c| c.get()).collect();
        assert_eq!(raw, vec![900, 1100]);
        assert_eq!(load, Some(0.25));
    }

    #[tokio::test]
    async fn a_refusing_or_oversized_answer_is_a_typed_error() {
        let url =
            serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
                .await;
        let err = fetch_models(&url).await.unwrap_err();
        assert!(
            matches!(&err, WorkerError::MarketFetch { detail, .. } if detail.contains("503")),
            "{err}"
        );
        let huge = vec![b' '; MAX_MODEL_LIST_BYTES + 1];
        let url = serve_once(http_ok(&huge)).await;
        assert!(matches!(
            fetch_models(&url).await,
            Err(WorkerError::MarketFetch { .. })
        ));
        assert!(matches!(
            fetch_models("not a url").await,
            Err(WorkerError::MarketFetch { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_given_up_on_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(conn);
        });
        let err = fetch_models(&url).await.unwrap_err();
        assert!(err.to_string().contains("no answer within 10 s"), "{err}");
        silent.abort();
    }
}
