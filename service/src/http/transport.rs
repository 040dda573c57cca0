//! The listening socket: how long a connection may take to say something,
//! and how many may be open at once (issue 19, row 2).
//!
//! `axum::serve` has no timer: a socket that never sends a header, or sends
//! one byte a minute, is held forever, and enough of them exhaust the
//! process's descriptors so that `/healthz` stops answering. Here each
//! connection is served by hyper with:
//!
//! - a **header timeout** (`--header-timeout-secs`, 30): the whole header
//!   of every request must arrive within it, counted from the moment the
//!   connection is accepted or went idle after a response (hyper starts the
//!   timer then), so it is also the limit on an idle keep-alive
//!   connection;
//! - a **body timeout** (`--body-timeout-secs`, 60): the longest pause
//!   between two chunks of a request body (`RequestBodyTimeoutLayer`: 408);
//! - a **connection cap** (`--max-connections`, 4096, and never more than
//!   the descriptor limit allows): at the cap, the connection that has been
//!   idle longest (no request in progress) is closed to make room, so a
//!   crowd of idle sockets cannot lock out a health check or a caller; if
//!   every connection is busy, the new one is closed at once.
//!
//! With `--tls-cert` and `--tls-key` every connection is TLS
//! (`crate::tls::ServerTls`); the handshake must finish within the header
//! timeout, and a connection still in it counts as idle for the cap.
//!
//! At start the soft descriptor limit is raised to the hard one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::routing::RouterIntoService;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::tls::ServerTls;

/// Descriptors kept free for the database, the rule cache, logs and
/// outbound webhooks when the connection cap is derived from the limit.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// One open connection, as the cap sees it.
#[derive(Debug)]
struct Conn {
    /// Requests being handled right now.
    in_flight: AtomicUsize,
    /// Milliseconds since the listener started, at the last request's end
    /// (or the accept).
    last_active: AtomicU64,
    /// Woken to close the connection.
    evict: Notify,
}

/// The open connections.
#[derive(Debug)]
struct Registry {
    started: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn len(&self) -> usize {
        self.conns.lock().map_or(0, |c| c.len())
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        if let Ok(mut c) = self.conns.lock() {
            c.insert(id, Arc::clone(&conn));
        }
        (id, conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&id);
        }
    }

    /// Closes the connection idle the longest; false if none is idle.
    fn evict_idlest(&self) -> bool {
        let Ok(mut conns) = self.conns.lock() else { return false };
        let idlest = conns
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
            // Ties (the same millisecond) go to the connection accepted first.
            .min_by_key(|(id, c)| (c.last_active.load(Ordering::Relaxed), **id))
            .map(|(id, _)| *id);
        match idlest.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The connection cap: the configured one, within what the descriptor
/// limit leaves after [`RESERVED_DESCRIPTORS`].
pub fn connection_cap(configured: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        Some(n) => {
            configured.min(usize::try_from(n.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// Raises the soft descriptor limit to the hard one (what servers such as
/// nginx and the Go runtime do), so the cap can be what was configured.
pub fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the
/// open connections to finish their requests (the caller bounds the wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: TransportLimits,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
    let registry = Arc::new(Registry { started: Instant::now(), next_id: AtomicU64::new(0), conns: Mutex::default() });
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        "connection limits"
    );
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if registry.len() >= limits.max_connections && !registry.evict_idlest() {
            tracing::warn!(%peer, "connection cap reached with every connection busy; closing the new one");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, conn) = registry.add();
        crate::metrics::METRICS.connections.inc();
        let service = TrackedService {
            inner: app.clone().into_service::<hyper::body::Incoming>(),
            conn: Arc::clone(&conn),
            registry: Arc::clone(&registry),
            peer,
        };
        let (watcher, registry, tls) = (graceful.watcher(), Arc::clone(&registry), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service, &limits, watcher, &conn, peer).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(stream));
                    tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => serve_connection(stream, service, &limits, watcher, &conn, peer).await,
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        },
                        () = conn.evict.notified() => tracing::debug!(%peer, "handshaking connection closed for a new one"),
                    }
                }
            }
            registry.remove(id);
            crate::metrics::METRICS.connections.dec();
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves HTTP/1.1 on one accepted (and, with TLS, handshaken) connection
/// until it closes, is evicted for a new one, or shutdown ends it.
async fn serve_connection<IO>(
    io: IO,
    service: TrackedService<RouterIntoService<hyper::body::Incoming>>,
    limits: &TransportLimits,
    watcher: Watcher,
    conn: &Conn,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let connection = watcher.watch(connection);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
        }
        () = conn.evict.notified() => tracing::debug!(%peer, "idle connection closed for a new one"),
    }
}

/// The router, counting its requests in flight on `conn` (so the cap knows
/// which connections are idle), with the peer's address as a request
/// extension (`ConnectInfo`).
#[derive(Clone)]
struct TrackedService<S> {
    inner: S,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    peer: SocketAddr,
}

impl<S> tower_service::Service<Request<hyper::body::Incoming>> for TrackedService<S>
where
    S: tower_service::Service<
            Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let (conn, registry) = (Arc::clone(&self.conn), Arc::clone(&self.registry));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            conn.last_active.store(registry.now_ms(), Ordering::Relaxed);
            conn.in_flight.fetch_sub(1, Ordering::AcqRel);
            response
        })
    }
}
