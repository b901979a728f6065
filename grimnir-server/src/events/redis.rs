//! The Redis link: `PUBLISH` on the channel `<prefix>.<station>.<type>` and `PSUBSCRIBE` to
//! `<prefix>.*`.
//!
//! Reconnection is ours: the redis crate's pub/sub and multiplexed connections do not
//! reconnect, so each side runs a loop that connects, works until the connection fails, and
//! tries again after a [`Backoff`] delay (100 ms doubling to 5 s). Both sides ping every
//! [`PING_EVERY`] so that a silent loss is noticed. Redis pub/sub delivers at most once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bus::{
    Backoff, BusError, CONNECT_TIMEOUT, LinkShared, Outgoing, SEND_TIMEOUT, SubjectPrefix, UpCheck,
};
use crate::metrics;

/// How often the subscriber checks its connection.
const PING_EVERY: Duration = Duration::from_secs(15);

/// Checks the URL and starts the subscriber and publisher tasks.
pub(super) fn start(
    url: &str,
    prefix: &SubjectPrefix,
    shared: LinkShared,
    outgoing: mpsc::Receiver<Outgoing>,
) -> Result<(UpCheck, Vec<JoinHandle<()>>), BusError> {
    let redacted = super::EventBusUrl::Redis(url.to_owned()).to_string();
    let client = redis::Client::open(url).map_err(|e| BusError::Url {
        url: redacted.clone(),
        reason: e.to_string(),
    })?;
    let publisher_up = shared.publisher_up.clone();
    let subscriber = tokio::spawn(subscribe(
        client.clone(),
        format!("{prefix}.*"),
        shared.clone(),
        redacted.clone(),
    ));
    let publisher = tokio::spawn(publish(client, outgoing, shared, redacted));
    Ok((UpCheck::Flag(publisher_up), vec![subscriber, publisher]))
}

/// Pattern-subscribes to every event under the prefix and delivers them locally, reconnecting
/// whenever the connection is lost.
async fn subscribe(client: redis::Client, pattern: String, shared: LinkShared, url: String) {
    let mut backoff = Backoff::new();
    let mut was_up = true; // so the first failure is logged
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                backoff.reset();
                set(&shared.subscriber_up, &shared, true);
                tracing::info!(bus = %url, %pattern, "event bus subscribed");
                let (mut sink, mut stream) = pubsub.split();
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.tick().await; // the first tick is immediate
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => shared
                                .deliver_remote(Bytes::copy_from_slice(message.get_payload_bytes())),
                            None => break,
                        },
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(
                                SEND_TIMEOUT,
                                sink.ping::<redis::Value>(),
                            )
                            .await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                set(&shared.subscriber_up, &shared, false);
                was_up = true;
                tracing::warn!(bus = %url, "event bus subscription lost; reconnecting");
            }
            Ok(Err(e)) => log_failure(&mut was_up, &url, &e.to_string()),
            Err(_) => log_failure(&mut was_up, &url, "connection timed out"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Sends queued events on a multiplexed connection, reconnecting whenever it fails. A send
/// that failed for the connection's sake is tried once more on the next connection, so a brief
/// outage loses nothing that was already queued.
async fn publish(
    client: redis::Client,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shared: LinkShared,
    url: String,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(SEND_TIMEOUT));
    let mut backoff = Backoff::new();
    let mut was_up = true;
    // A message whose send failed with the connection, and whether it was retried already.
    let mut pending: Option<(Outgoing, bool)> = None;
    loop {
        let mut connection: MultiplexedConnection = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => connection,
            Err(e) => {
                log_failure(&mut was_up, &url, &e.to_string());
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        set(&shared.publisher_up, &shared, true);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await; // the first tick is immediate
        loop {
            let (message, retried) = match pending.take() {
                Some(pending) => pending,
                None => tokio::select! {
                    message = outgoing.recv() => match message {
                        Some(message) => (message, false),
                        None => return, // the bus is gone
                    },
                    _ = ping.tick() => {
                        let ping_command = redis::cmd("PING");
                        let pong = ping_command.query_async::<redis::Value>(&mut connection);
                        if matches!(tokio::time::timeout(SEND_TIMEOUT, pong).await, Ok(Ok(_))) {
                            continue;
                        }
                        break;
                    }
                },
            };
            let sent = tokio::time::timeout(
                SEND_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(&message.subject)
                    .arg(message.payload.as_ref())
                    .query_async::<i64>(&mut connection),
            )
            .await;
            let connection_failed = match sent {
                Ok(Ok(_)) => {
                    metrics::event_bus_sent();
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "event not sent to Redis");
                    e.is_unrecoverable_error()
                        || e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_timeout()
                }
                Err(_) => true,
            };
            if connection_failed && !retried {
                pending = Some((message, true));
            } else {
                metrics::event_publish_failure("send");
            }
            if connection_failed {
                break;
            }
        }
        set(&shared.publisher_up, &shared, false);
        was_up = true;
        tracing::warn!(bus = %url, "event bus connection lost; reconnecting");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn set(flag: &Arc<AtomicBool>, shared: &LinkShared, up: bool) {
    flag.store(up, Ordering::Relaxed);
    shared.set_up();
}

/// Logs the first of a run of failed connection attempts; the rest at debug level.
fn log_failure(was_up: &mut bool, url: &str, reason: &str) {
    if std::mem::take(was_up) {
        tracing::warn!(bus = %url, %reason, "cannot reach the event bus; retrying with backoff");
    } else {
        tracing::debug!(bus = %url, %reason, "event bus still unreachable");
    }
}
