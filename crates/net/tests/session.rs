//! Sessions between two in-memory ends: handshake, queries, packets, keepalive, timeouts and
//! back-pressure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use cocoon_net::{ConnectionConfig, Inbound, NetError, accept, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn pair(
    dialer: ConnectionConfig,
    acceptor: ConnectionConfig,
) -> (
    (cocoon_net::Connection, cocoon_net::Incoming),
    (cocoon_net::Connection, cocoon_net::Incoming),
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept(b, acceptor));
    let client = connect(a, dialer).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

#[tokio::test]
async fn queries_and_packets_flow_both_ways() {
    let ((c, mut c_in), (s, mut s_in)) =
        pair(ConnectionConfig::dialer(), ConnectionConfig::acceptor()).await;
    assert_eq!(c.session_id(), s.session_id());
    tokio::spawn(async move {
        while let Some(item) = s_in.recv().await {
            match item {
                Inbound::Query(q) => {
                    let mut reply = b"re:".to_vec();
                    reply.extend_from_slice(&q.data);
                    if q.data.as_ref() == b"fail" {
                        q.fail(404, "no such thing").await.unwrap();
                    } else {
                        q.answer(Bytes::from(reply)).await.unwrap();
                    }
                }
                Inbound::Packet(p) => s.send_packet(p).await.unwrap(),
            }
        }
    });
    let answers = futures_join(&c).await;
    assert_eq!(
        answers,
        vec![b"re:q0".to_vec(), b"re:q1".to_vec(), b"re:q2".to_vec()]
    );
    match c.query(Bytes::from_static(b"fail")).await {
        Err(NetError::QueryFailed { code: 404, message }) => assert_eq!(message, "no such thing"),
        other => panic!("{other:?}"),
    }
    c.send_packet(Bytes::from_static(b"echo")).await.unwrap();
    match c_in.recv().await.unwrap() {
        Inbound::Packet(p) => assert_eq!(&p[..], b"echo"),
        other => panic!("{other:?}"),
    }
}

async fn futures_join(c: &cocoon_net::Connection) -> Vec<Vec<u8>> {
    let mut tasks = Vec::new();
    for i in 0..3 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.query(Bytes::from(format!("q{i}")))
                .await
                .unwrap()
                .to_vec()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn unanswered_query_times_out_and_close_fails_pending() {
    let ((c, _c_in), (_s, mut s_in)) =
        pair(ConnectionConfig::dialer(), ConnectionConfig::acceptor()).await;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(item) = s_in.recv().await {
            held.push(item);
        }
    });
    let err = c
        .query_with_timeout(Bytes::from_static(b"x"), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::QueryTimeout(_)), "{err}");
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        c2.query_with_timeout(Bytes::from_static(b"y"), Duration::from_secs(30))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.close();
    assert!(matches!(pending.await.unwrap(), Err(NetError::Closed)));
    holder.abort();
}

#[tokio::test]
async fn dialer_pings_and_idle_peer_is_dropped() {
    let mut d = ConnectionConfig::dialer();
    d.ping_interval = Some(Duration::from_millis(50));
    d.idle_timeout = Duration::from_millis(400);
    let mut a = ConnectionConfig::acceptor();
    a.idle_timeout = Duration::from_millis(400);
    let ((c, _ci), (s, _si)) = pair(d, a).await;
    // Pings keep both ends alive well past the idle timeout.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !c.is_closed() && !s.is_closed(),
        "{:?} {:?}",
        c.close_reason(),
        s.close_reason()
    );

    // A peer that completes the handshake and then says nothing is dropped.
    let (x, mut y) = tokio::io::duplex(1024);
    let mut a = ConnectionConfig::acceptor();
    a.idle_timeout = Duration::from_millis(200);
    let server = tokio::spawn(accept(x, a));
    let mut connect_frame = vec![12, 0, 0, 0, 0, 0, 0, 0];
    connect_frame.extend_from_slice(&0xa57c4261u32.to_le_bytes());
    connect_frame.extend_from_slice(&7i64.to_le_bytes());
    y.write_all(&connect_frame).await.unwrap();
    let (conn, _inc) = server.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(2), conn.closed())
        .await
        .unwrap();
    assert!(
        conn.close_reason().unwrap().contains("idle"),
        "{:?}",
        conn.close_reason()
    );
    let mut sink = vec![0u8; 64];
    let _ = y.read(&mut sink).await;
}

#[tokio::test]
async fn garbage_and_bad_seqno_close_with_protocol_error() {
    let (x, mut y) = tokio::io::duplex(1024);
    let server = tokio::spawn(accept(x, ConnectionConfig::acceptor()));
    y.write_all(&[1, 0, 0, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("frame length"), "{err}");

    let (x, mut y) = tokio::io::duplex(1024);
    let server = tokio::spawn(accept(x, ConnectionConfig::acceptor()));
    let mut frame = vec![12, 0, 0, 0, 5, 0, 0, 0];
    frame.extend_from_slice(&0xa57c4261u32.to_le_bytes());
    frame.extend_from_slice(&7i64.to_le_bytes());
    y.write_all(&frame).await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("seqno"), "{err}");
}

/// Sends packets of `size` bytes until one waits 300 ms for room; answers how many were taken.
async fn send_until_stalled(c: cocoon_net::Connection, size: usize) -> usize {
    let mut sent = 0usize;
    while let Ok(Ok(())) = tokio::time::timeout(
        Duration::from_millis(300),
        c.send_packet(Bytes::from(vec![7u8; size])),
    )
    .await
    {
        sent += 1;
    }
    sent
}

#[tokio::test]
async fn slow_consumer_bounds_memory_through_backpressure() {
    let mut a = ConnectionConfig::acceptor();
    a.recv_queue = 4;
    let mut d = ConnectionConfig::dialer();
    d.send_queue = 4;
    let ((c, _ci), (_s, mut s_in)) = pair(d, a).await;
    // Nobody reads on the server: the sender must stall instead of queueing without bound.
    let sent = send_until_stalled(c, 1024).await;
    // queues (4 + 4) plus what fits in the 64 KiB pipe and the reader's buffer
    assert!(sent < 200, "sent {sent} packets without a reader");
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), s_in.recv()).await {
        got += 1;
    }
    assert_eq!(
        got, sent,
        "every packet accepted for sending is delivered once read"
    );
}

#[tokio::test]
async fn the_send_queue_is_bounded_in_bytes_not_only_in_frames() {
    let mut a = ConnectionConfig::acceptor();
    a.recv_queue = 1;
    let mut d = ConnectionConfig::dialer();
    // Many frames may wait, but only 256 KiB of them.
    d.send_queue = 100_000;
    d.send_queue_bytes = 256 * 1024;
    let ((c, _ci), (_s, mut s_in)) = pair(d, a).await;
    // Nobody reads on the server: 64 KiB frames stall after the byte budget (plus the pipe and
    // the reader's buffers), not after 100,000 frames.
    let sent = send_until_stalled(c, 64 * 1024).await;
    assert!(
        sent <= 16,
        "{sent} frames of 64 KiB queued without a reader"
    );
    // Once the reader reads, everything sent arrives, and the budget frees up again.
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), s_in.recv()).await {
        got += 1;
    }
    assert_eq!(got, sent);
}

#[tokio::test]
async fn the_receive_queue_is_bounded_in_bytes_not_only_in_items() {
    let mut a = ConnectionConfig::acceptor();
    // Many items may wait, but only 256 KiB of them.
    a.recv_queue = 100_000;
    a.recv_queue_bytes = 256 * 1024;
    let mut d = ConnectionConfig::dialer();
    d.send_queue = 1;
    d.send_queue_bytes = 64 * 1024;
    let ((c, _ci), (_s, mut s_in)) = pair(d, a).await;
    // The server's consumer reads nothing: its reader stops reading the socket once 256 KiB
    // wait, and the sender stalls, instead of 100,000 items piling up.
    let sent = send_until_stalled(c, 64 * 1024).await;
    assert!(
        sent <= 12,
        "{sent} items of 64 KiB queued without a consumer"
    );
    let mut got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), s_in.recv()).await {
        got += 1;
    }
    assert_eq!(got, sent);
}

#[tokio::test]
async fn a_peer_that_reads_nothing_past_the_write_deadline_is_disconnected() {
    let mut a = ConnectionConfig::acceptor();
    a.recv_queue = 1;
    a.recv_queue_bytes = 64 * 1024;
    let mut d = ConnectionConfig::dialer();
    d.send_queue_bytes = 64 * 1024;
    d.write_timeout = Duration::from_millis(300);
    let ((c, _ci), (_s, _s_in)) = pair(d, a).await;
    let started = std::time::Instant::now();
    let err = loop {
        match c.send_packet(Bytes::from(vec![7u8; 64 * 1024])).await {
            Ok(()) => assert!(started.elapsed() < Duration::from_secs(5)),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, NetError::WriteStalled(_)), "{err}");
    assert!(c.is_closed());
    assert!(c.close_reason().unwrap().contains("read nothing"));
}
