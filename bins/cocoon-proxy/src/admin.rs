//! `cocoon-proxy change-model`: the operator's side of `POST /admin/change-model` on a running
//! proxy's stats port (one plain HTTP/1.1 request on loopback; no client library needed).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long the proxy may take: a worker may need minutes to load a model.
const DEADLINE: Duration = Duration::from_secs(960);

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks the proxy whose stats port is `stats` to switch worker `worker` to `model`; prints
/// its answer.
pub(crate) async fn change_model(
    stats: SocketAddr,
    worker: u64,
    model: &str,
) -> Result<(), String> {
    let request = format!(
        "POST /admin/change-model?worker={worker}&model={} HTTP/1.1\r\nHost: {}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        encode(model),
        stats.ip(),
    );
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(stats).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| format!("no answer from {stats} within {DEADLINE:?}"))?
        .map_err(|e| format!("cannot reach the proxy's stats port {stats}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head.split(' ').nth(1).is_some_and(|status| status == "200");
    if ok {
        print!("{body}");
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            head.lines().next().unwrap_or("no status"),
            body.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn model_names_are_percent_encoded() {
        assert_eq!(encode("Qwen/Qwen3-32B@v1 x"), "Qwen%2FQwen3-32B%40v1%20x");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }
}
