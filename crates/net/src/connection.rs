//! One framed COCOON session over a byte stream: a reader task that decodes frames and
//! dispatches them, a writer task that batches outgoing frames into few writes, and a cloneable
//! [`Connection`] handle for sending packets and queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cocoon_protocol::messages::tcp;
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::{FrameDecoder, FrameEncoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::NetError;

/// Which end of the session this is; the dialer sends `tcp.connect` and the pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opened the connection.
    Dialer,
    /// Accepted the connection.
    Acceptor,
}

/// Limits and timers of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Largest frame body accepted.
    pub max_frame_len: u32,
    /// Send `tcp.ping` after this long without receiving anything (dialer side).
    pub ping_interval: Option<Duration>,
    /// Drop the connection after this long without receiving anything.
    pub idle_timeout: Duration,
    /// Default time a query waits for its answer.
    pub query_timeout: Duration,
    /// Time allowed for `tcp.connect` / `tcp.connected`.
    pub handshake_timeout: Duration,
    /// Time allowed to open the connection. Dialing: for the TCP connect, and for each of the
    /// peer's proof-of-work challenge and the delivery of our answer. Accepting: for the
    /// whole gate, from accept to an open session (proof of work, RA-TLS, `tcp.connect`).
    pub open_timeout: Duration,
    /// Outgoing frames queued before senders wait.
    pub send_queue: usize,
    /// Outgoing bytes queued before senders wait: a peer that stops reading holds at most this
    /// much of our memory, and a sender with a deadline sees the stall.
    pub send_queue_bytes: usize,
    /// Longest a send may wait for room in the queue: a peer that reads nothing for this long
    /// has its connection closed ([`NetError::WriteStalled`]).
    pub write_timeout: Duration,
    /// Incoming packets and queries queued before the reader stops reading the socket.
    pub recv_queue: usize,
    /// Incoming bytes queued before the reader stops reading the socket.
    pub recv_queue_bytes: usize,
    /// Our queries waiting for answers at once.
    pub max_queries_in_flight: usize,
}

/// Default [`ConnectionConfig::send_queue_bytes`]: 4 MiB.
pub const DEFAULT_SEND_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Default [`ConnectionConfig::recv_queue_bytes`]: 16 MiB (at least one frame of the largest
/// size fits, which a frame over the budget waits for).
pub const DEFAULT_RECV_QUEUE_BYTES: usize = 16 * 1024 * 1024;

impl ConnectionConfig {
    /// The reference's timers for a dialed connection: ping after 10 s, drop after 20 s idle.
    pub fn dialer() -> Self {
        Self {
            max_frame_len: cocoon_protocol::frame::MAX_FRAME_LEN,
            ping_interval: Some(Duration::from_secs(10)),
            idle_timeout: Duration::from_secs(20),
            query_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(10),
            send_queue: 1024,
            send_queue_bytes: DEFAULT_SEND_QUEUE_BYTES,
            write_timeout: Duration::from_secs(30),
            recv_queue: 1024,
            recv_queue_bytes: DEFAULT_RECV_QUEUE_BYTES,
            max_queries_in_flight: 4096,
        }
    }

    /// The reference's timers for an accepted connection: no pings, drop after 60 s idle.
    pub fn acceptor() -> Self {
        Self {
            ping_interval: None,
            idle_timeout: Duration::from_secs(60),
            ..Self::dialer()
        }
    }
}

/// Something the peer sent that the role must handle.
#[derive(Debug)]
pub enum Inbound {
    /// A one-way `tcp.packet` payload (a boxed message).
    Packet(Bytes),
    /// A `tcp.query` to answer.
    Query(InboundQuery),
}

/// A query from the peer; answer it exactly once (dropping it answers with an error).
#[derive(Debug)]
pub struct InboundQuery {
    /// The query id chosen by the peer.
    pub id: i64,
    /// The boxed query message.
    pub data: Bytes,
    conn: Connection,
    answered: bool,
}

impl InboundQuery {
    /// Sends `tcp.queryAnswer` with a boxed answer.
    pub async fn answer(mut self, data: Bytes) -> Result<(), NetError> {
        self.answered = true;
        let msg = tcp::QueryAnswer { id: self.id, data };
        self.conn.send_raw(Bytes::from(msg.to_boxed_bytes())).await
    }

    /// Sends `tcp.queryError`.
    pub async fn fail(mut self, code: i32, message: &str) -> Result<(), NetError> {
        self.answered = true;
        let msg = tcp::QueryError {
            id: self.id,
            code,
            message: message.to_owned(),
        };
        self.conn.send_raw(Bytes::from(msg.to_boxed_bytes())).await
    }
}

impl Drop for InboundQuery {
    fn drop(&mut self) {
        if !self.answered {
            let msg = tcp::QueryError {
                id: self.id,
                code: 500,
                message: "query dropped".into(),
            };
            let _ = self
                .conn
                .shared
                .out
                .try_send(Bytes::from(msg.to_boxed_bytes()));
        }
    }
}

/// The stream of [`Inbound`] items; ends when the connection closes.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Inbound>,
    conn: Connection,
}

impl Incoming {
    /// The next packet or query, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Inbound> {
        let item = self.rx.recv().await?;
        let len = match &item {
            Inbound::Packet(data) => data.len(),
            Inbound::Query(q) => q.data.len(),
        };
        self.conn
            .shared
            .recv_budget
            .add_permits(recv_permits(&self.conn.shared.config, len) as usize);
        Some(item)
    }
}

/// The receive-budget permits an item of `len` bytes takes (at most the whole budget).
fn recv_permits(config: &ConnectionConfig, len: usize) -> u32 {
    let budget = config
        .recv_queue_bytes
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    u32::try_from(len.clamp(1, budget)).unwrap_or(u32::MAX)
}

type Pending = Mutex<HashMap<i64, oneshot::Sender<Result<Bytes, NetError>>>>;

#[derive(Debug)]
struct Shared {
    out: mpsc::Sender<Bytes>,
    /// Byte budget of the send queue: a frame takes its length in permits (at most the whole
    /// budget) before it is queued, and the writer gives them back once it is written.
    send_budget: tokio::sync::Semaphore,
    /// Byte budget of the receive queue: the reader takes an item's length before queueing it
    /// (and stops reading the socket while it waits), [`Incoming::recv`] gives it back.
    recv_budget: tokio::sync::Semaphore,
    pending: Pending,
    next_query_id: AtomicI64,
    closed: CancellationToken,
    close_reason: Mutex<Option<String>>,
    config: ConnectionConfig,
    session_id: i64,
}

/// A handle to a running session; clone it freely. Dropping every handle does not close the
/// connection: call [`Connection::close`].
#[derive(Debug, Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// Sends a boxed message as `tcp.packet`, waiting while the send queue is full.
    pub async fn send_packet(&self, payload: Bytes) -> Result<(), NetError> {
        let msg = tcp::Packet { data: payload };
        self.send_raw(Bytes::from(msg.to_boxed_bytes())).await
    }

    /// Sends a boxed query and waits for its answer for the configured query timeout.
    pub async fn query(&self, payload: Bytes) -> Result<Bytes, NetError> {
        self.query_with_timeout(payload, self.shared.config.query_timeout)
            .await
    }

    /// Sends a boxed query and waits at most `timeout` for its answer.
    pub async fn query_with_timeout(
        &self,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        let id = self.shared.next_query_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if pending.len() >= self.shared.config.max_queries_in_flight {
                return Err(NetError::TooManyQueries(pending.len()));
            }
            pending.insert(id, tx);
        }
        let msg = tcp::Query { id, data: payload };
        if let Err(e) = self.send_raw(Bytes::from(msg.to_boxed_bytes())).await {
            lock(&self.shared.pending).remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(NetError::Closed),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                Err(NetError::QueryTimeout(timeout))
            }
        }
    }

    async fn send_raw(&self, body: Bytes) -> Result<(), NetError> {
        if self.shared.closed.is_cancelled() {
            return Err(NetError::Closed);
        }
        let permits = frame_permits(&self.shared.config, body.len());
        let stalled = self.shared.config.write_timeout;
        tokio::select! {
            r = async {
                self.shared
                    .send_budget
                    .acquire_many(permits)
                    .await
                    .map_err(|_| NetError::Closed)?
                    .forget();
                self.shared.out.send(body).await.map_err(|_| {
                    self.shared.send_budget.add_permits(permits as usize);
                    NetError::Closed
                })
            } => r,
            () = tokio::time::sleep(stalled) => {
                self.shutdown(format!("the peer read nothing for {stalled:?}"));
                Err(NetError::WriteStalled(stalled))
            }
            () = self.shared.closed.cancelled() => Err(NetError::Closed),
        }
    }

    /// Closes the connection; pending queries fail with [`NetError::Closed`].
    pub fn close(&self) {
        self.shutdown("closed locally".into());
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Resolves when the connection is closed.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.shared.close_reason).clone()
    }

    /// The id exchanged in `tcp.connect` / `tcp.connected`.
    pub fn session_id(&self) -> i64 {
        self.shared.session_id
    }

    /// Outgoing frames queued and not yet written.
    pub fn queued_frames(&self) -> usize {
        self.shared.config.send_queue - self.shared.out.capacity()
    }

    fn shutdown(&self, reason: String) {
        {
            let mut r = lock(&self.shared.close_reason);
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.shared.closed.cancel();
        let pending: Vec<_> = lock(&self.shared.pending).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(NetError::Closed));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections cannot leave them inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Dials: sends `tcp.connect` and waits for the matching `tcp.connected`.
pub async fn connect<S>(
    stream: S,
    config: ConnectionConfig,
) -> Result<(Connection, Incoming), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    start(stream, config, Side::Dialer).await
}

/// Accepts: waits for `tcp.connect` and answers `tcp.connected`.
pub async fn accept<S>(
    stream: S,
    config: ConnectionConfig,
) -> Result<(Connection, Incoming), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    start(stream, config, Side::Acceptor).await
}

async fn start<S>(
    stream: S,
    config: ConnectionConfig,
    side: Side,
) -> Result<(Connection, Incoming), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut decoder = FrameDecoder::new(config.max_frame_len);
    let mut encoder = FrameEncoder::new();
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);

    let handshake = async {
        match side {
            Side::Dialer => {
                let id = rand::random::<i64>();
                encoder.encode(&tcp::Connect { id }.to_boxed_bytes(), &mut wbuf)?;
                wr.write_all(&wbuf).await?;
                wr.flush().await?;
                wbuf.clear();
                let body = read_frame(&mut rd, &mut decoder, &mut rbuf).await?;
                let got = tcp::Connected::from_boxed_bytes(body)
                    .map_err(|e| NetError::Handshake(format!("expected tcp.connected: {e}")))?;
                if got.id != id {
                    return Err(NetError::Handshake(format!(
                        "tcp.connected id {} != {}",
                        got.id, id
                    )));
                }
                Ok(id)
            }
            Side::Acceptor => {
                let body = read_frame(&mut rd, &mut decoder, &mut rbuf).await?;
                let got = tcp::Connect::from_boxed_bytes(body)
                    .map_err(|e| NetError::Handshake(format!("expected tcp.connect: {e}")))?;
                encoder.encode(&tcp::Connected { id: got.id }.to_boxed_bytes(), &mut wbuf)?;
                wr.write_all(&wbuf).await?;
                wr.flush().await?;
                wbuf.clear();
                Ok(got.id)
            }
        }
    };
    let session_id = tokio::time::timeout(config.handshake_timeout, handshake)
        .await
        .map_err(|_| NetError::Handshake("timed out".into()))??;

    let (out_tx, out_rx) = mpsc::channel(config.send_queue.max(1));
    let (in_tx, in_rx) = mpsc::channel(config.recv_queue.max(1));
    let send_budget = tokio::sync::Semaphore::new(
        config
            .send_queue_bytes
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    );
    let recv_budget = tokio::sync::Semaphore::new(
        config
            .recv_queue_bytes
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    );
    let shared = Arc::new(Shared {
        out: out_tx,
        send_budget,
        recv_budget,
        pending: Mutex::new(HashMap::new()),
        next_query_id: AtomicI64::new(rand::random::<i64>() & 0x3fff_ffff_ffff_ffff),
        closed: CancellationToken::new(),
        close_reason: Mutex::new(None),
        config,
        session_id,
    });
    let conn = Connection { shared };
    tokio::spawn(write_loop(conn.clone(), wr, encoder, wbuf, out_rx));
    tokio::spawn(read_loop(conn.clone(), rd, decoder, rbuf, in_tx));
    Ok((conn.clone(), Incoming { rx: in_rx, conn }))
}

async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
) -> Result<Bytes, NetError> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(frame.body);
        }
        let need = decoder.bytes_needed(buf);
        if buf.capacity() - buf.len() < need.saturating_sub(buf.len()).max(4096) {
            buf.reserve(need.saturating_sub(buf.len()).max(4096));
        }
        if rd.read_buf(buf).await? == 0 {
            return Err(NetError::Closed);
        }
    }
}

/// The send-budget permits a frame of `len` bytes takes: its length, at most the whole budget
/// (so a frame larger than the budget waits for an empty queue instead of forever).
fn frame_permits(config: &ConnectionConfig, len: usize) -> u32 {
    let budget = config
        .send_queue_bytes
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    u32::try_from(len.clamp(1, budget)).unwrap_or(u32::MAX)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    conn: Connection,
    mut wr: W,
    mut encoder: FrameEncoder,
    mut buf: BytesMut,
    mut rx: mpsc::Receiver<Bytes>,
) {
    const BATCH_BYTES: usize = 256 * 1024;
    let result: Result<(), NetError> = async {
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => return Ok(()) },
                () = conn.shared.closed.cancelled() => return Ok(()),
            };
            let mut permits = frame_permits(&conn.shared.config, first.len()) as usize;
            encoder.encode(&first, &mut buf)?;
            while buf.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        permits += frame_permits(&conn.shared.config, m.len()) as usize;
                        encoder.encode(&m, &mut buf)?;
                    }
                    Err(_) => break,
                }
            }
            wr.write_all(&buf).await?;
            wr.flush().await?;
            buf.clear();
            conn.shared.send_budget.add_permits(permits);
        }
    }
    .await;
    let _ = wr.shutdown().await;
    match result {
        Ok(()) => conn.shutdown("writer finished".into()),
        Err(e) => conn.shutdown(format!("write failed: {e}")),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    conn: Connection,
    mut rd: R,
    mut decoder: FrameDecoder,
    mut buf: BytesMut,
    inbound: mpsc::Sender<Inbound>,
) {
    let config = conn.shared.config.clone();
    let tick = config
        .ping_interval
        .unwrap_or(config.idle_timeout)
        .min(config.idle_timeout)
        / 2;
    let mut last_recv = Instant::now();
    let mut last_ping = Instant::now();
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason: String = loop {
        // Drain every complete frame already buffered.
        let mut failed = None;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Err(e) = dispatch(&conn, frame.body, &inbound).await {
                        failed = Some(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(NetError::Protocol(e));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break e.to_string();
        }
        let need = decoder
            .bytes_needed(&buf)
            .saturating_sub(buf.len())
            .max(8192);
        buf.reserve(need);
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break "peer closed the connection".into(),
                Ok(_) => last_recv = Instant::now(),
                Err(e) => break format!("read failed: {e}"),
            },
            _ = ticker.tick() => {
                let idle = last_recv.elapsed();
                if idle > config.idle_timeout {
                    break NetError::IdleTimeout(config.idle_timeout).to_string();
                }
                if let Some(interval) = config.ping_interval
                    && idle >= interval
                    && last_ping.elapsed() >= interval
                {
                    last_ping = Instant::now();
                    let ping = Bytes::from(tcp::Ping { id: rand::random() }.to_boxed_bytes());
                    let permits = frame_permits(&conn.shared.config, ping.len());
                    // A full queue makes the ping moot: skip it rather than wait here.
                    if let Ok(p) = conn.shared.send_budget.try_acquire_many(permits) {
                        p.forget();
                        if conn.shared.out.try_send(ping).is_err() {
                            conn.shared.send_budget.add_permits(permits as usize);
                        }
                    }
                }
            }
            () = conn.shared.closed.cancelled() => break "closed".into(),
        }
    };
    tracing::debug!(session = conn.shared.session_id, %reason, "connection closed");
    conn.shutdown(reason);
}

async fn dispatch(
    conn: &Connection,
    body: Bytes,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), NetError> {
    let packet: tcp::AnyPacket = tl::from_bytes(body)?;
    match packet {
        tcp::AnyPacket::Packet(p) => deliver(conn, inbound, Inbound::Packet(p.data)).await,
        tcp::AnyPacket::Query(q) => {
            let item = InboundQuery {
                id: q.id,
                data: q.data,
                conn: conn.clone(),
                answered: false,
            };
            deliver(conn, inbound, Inbound::Query(item)).await
        }
        tcp::AnyPacket::QueryAnswer(a) => {
            if let Some(tx) = lock(&conn.shared.pending).remove(&a.id) {
                let _ = tx.send(Ok(a.data));
            }
            Ok(())
        }
        tcp::AnyPacket::QueryError(e) => {
            if let Some(tx) = lock(&conn.shared.pending).remove(&e.id) {
                let _ = tx.send(Err(NetError::QueryFailed {
                    code: e.code,
                    message: e.message,
                }));
            }
            Ok(())
        }
        tcp::AnyPacket::Ping(p) => {
            let pong = tcp::Pong { id: p.id };
            conn.send_raw(Bytes::from(pong.to_boxed_bytes())).await
        }
        tcp::AnyPacket::Pong(_) => Ok(()),
        tcp::AnyPacket::Connect(_) | tcp::AnyPacket::Connected(_) => {
            Err(NetError::Handshake("session handshake repeated".into()))
        }
        _ => Err(NetError::Handshake("unsupported tcp packet".into())),
    }
}

async fn deliver(
    conn: &Connection,
    inbound: &mpsc::Sender<Inbound>,
    item: Inbound,
) -> Result<(), NetError> {
    // Waiting here stops reading the socket: a consumer that falls behind slows its peer
    // down instead of growing a queue.
    let len = match &item {
        Inbound::Packet(data) => data.len(),
        Inbound::Query(q) => q.data.len(),
    };
    let permits = recv_permits(&conn.shared.config, len);
    tokio::select! {
        r = async {
            conn.shared
                .recv_budget
                .acquire_many(permits)
                .await
                .map_err(|_| NetError::Closed)?
                .forget();
            inbound.send(item).await.map_err(|_| NetError::Closed)
        } => r,
        () = conn.shared.closed.cancelled() => Err(NetError::Closed),
    }
}
