//! A TCP proxy that adds a fixed delay to everything a client sends, so a
//! local S3 server answers like a distant one (each request waits `DELAY`
//! before the server sees it). The S3 benchmark (`scripts/bench-s3.sh`) runs
//! djgc, dj.gc and a single paginated listing through it.
//!
//! Bytes are delayed, not requests: every chunk read from the client is
//! forwarded `DELAY` after it arrived, in order, so a request split over many
//! chunks is delayed once, as by a long cable, and many connections are
//! delayed independently, as on a real network. Answers pass straight back.
//!
//! Usage: `latency_proxy LISTEN UPSTREAM DELAY_MS`, e.g.
//! `latency_proxy 127.0.0.1:8334 127.0.0.1:8333 20`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay_ms] = args.as_slice() else {
        eprintln!("usage: latency_proxy LISTEN UPSTREAM DELAY_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(delay_ms.parse().unwrap_or_else(|_| {
        eprintln!("latency_proxy: DELAY_MS {delay_ms:?} is not a whole number");
        std::process::exit(2);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen.as_str()).await?;
        eprintln!("latency_proxy: {listen} -> {upstream}, +{delay:?} per request");
        loop {
            let (client, _) = listener.accept().await?;
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Err(e) = relay(client, &upstream, delay).await {
                    eprintln!("latency_proxy: connection ended: {e}");
                }
            });
        }
    })
}

async fn relay(client: TcpStream, upstream: &str, delay: Duration) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    let upstream_leg = tokio::spawn(forward_delayed(client_read, server_write, delay));
    let answered = tokio::io::copy(&mut server_read, &mut client_write).await;
    upstream_leg.abort();
    answered.map(|_| ())
}

/// Reads chunks as they come and writes each one `delay` after its arrival.
async fn forward_delayed(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        if tx
            .send((Instant::now() + delay, buffer[..read].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    writer.await.map_err(std::io::Error::other)?
}
