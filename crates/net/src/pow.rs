//! The proof-of-work gate on a raw stream, before TLS: the acceptor challenges, the dialer
//! solves. Solving runs on the blocking pool so it never stalls other connections.

use std::time::Duration;

use cocoon_protocol::pow::{ANSWER_LEN, CHALLENGE_LEN, PowAnswer, PowChallenge};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::NetError;

/// Acceptor side: sends a challenge of `difficulty` and checks the answer within `timeout`.
pub async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    difficulty: i32,
    timeout: Duration,
) -> Result<(), NetError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let challenge = PowChallenge { difficulty, salt };
    let mut buf = [0u8; ANSWER_LEN];
    tokio::time::timeout(timeout, async {
        stream.write_all(&challenge.encode()).await?;
        stream.flush().await?;
        stream.read_exact(&mut buf).await
    })
    .await
    .map_err(|_| NetError::Deadline {
        stage: "proof of work",
        after: timeout,
    })??;
    let answer = PowAnswer::decode(&buf)?;
    challenge.verify(&answer)?;
    Ok(())
}

/// Dialer side: reads the challenge, refuses difficulties above `max_difficulty`, answers.
/// The challenge must arrive, and the answer be taken, within `wait` each; solving itself is
/// bounded by `max_difficulty` instead.
pub async fn solve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    max_difficulty: i32,
    wait: Duration,
) -> Result<(), NetError> {
    let late = |stage: &'static str| NetError::Deadline { stage, after: wait };
    let mut buf = [0u8; CHALLENGE_LEN];
    tokio::time::timeout(wait, stream.read_exact(&mut buf))
        .await
        .map_err(|_| late("proof-of-work challenge"))??;
    let challenge = PowChallenge::decode(&buf)?;
    let answer = tokio::task::spawn_blocking(move || challenge.solve(max_difficulty))
        .await
        .map_err(|e| NetError::Pow(format!("solver task failed: {e}")))??;
    tokio::time::timeout(wait, async {
        stream.write_all(&answer.encode()).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| late("proof-of-work answer"))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn gate_passes_honest_client_and_refuses_hard_challenge() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let server =
            tokio::spawn(async move { challenge(&mut a, 8, Duration::from_secs(5)).await });
        solve(&mut b, 28, Duration::from_secs(5)).await.unwrap();
        server.await.unwrap().unwrap();

        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move { challenge(&mut a, 29, Duration::from_secs(5)).await });
        let err = solve(&mut b, 28, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[tokio::test]
    async fn gate_rejects_garbage_answer() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let server =
            tokio::spawn(async move { challenge(&mut a, 30, Duration::from_secs(5)).await });
        let mut c = [0u8; CHALLENGE_LEN];
        b.read_exact(&mut c).await.unwrap();
        b.write_all(&PowAnswer { nonce: 1 }.encode()).await.unwrap();
        assert!(server.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_silent_peer_is_given_up_on_both_sides() {
        let (mut a, _b) = tokio::io::duplex(64);
        let err = challenge(&mut a, 8, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Deadline {
                    stage: "proof of work",
                    ..
                }
            ),
            "{err}"
        );
        let (mut c, _d) = tokio::io::duplex(64);
        let err = solve(&mut c, 28, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Deadline {
                    stage: "proof-of-work challenge",
                    ..
                }
            ),
            "{err}"
        );
    }
}
