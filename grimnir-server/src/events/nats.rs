//! The NATS link: core NATS publish/subscribe on `<prefix>.<station>.<type>`.
//!
//! Reconnection is the client library's (async-nats): it connects in the background, retries
//! without limit with our [`Backoff`] delays (100 ms doubling to 5 s), and re-subscribes after
//! a reconnection; we probe the subscription again after each (re)connection. Core NATS delivers at most once; JetStream is not used, as events are live
//! telemetry with no value once stale.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::bus::{
    Backoff, BusError, CONNECT_TIMEOUT, LinkShared, Outgoing, SEND_TIMEOUT, SubjectPrefix, UpCheck,
};
use crate::metrics;

/// Sets up the client and starts the subscriber and publisher tasks.
pub(super) async fn start(
    url: &str,
    prefix: &SubjectPrefix,
    shared: LinkShared,
    outgoing: mpsc::Receiver<Outgoing>,
) -> Result<(UpCheck, Vec<JoinHandle<()>>), BusError> {
    let redacted = super::EventBusUrl::Nats(url.to_owned()).to_string();
    let events_shared = shared.clone();
    let events_url = redacted.clone();
    let reprobe = Arc::new(Notify::new());
    let events_reprobe = reprobe.clone();
    let client = async_nats::ConnectOptions::new()
        .name("grimnir-server")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(CONNECT_TIMEOUT)
        .reconnect_delay_callback(Backoff::nth)
        .event_callback(move |event| {
            let shared = events_shared.clone();
            let url = events_url.clone();
            let reprobe = events_reprobe.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        shared.publisher_up.store(true, Ordering::Relaxed);
                        // The library re-sends the subscription first; a probe tells when the
                        // server has it.
                        reprobe.notify_one();
                        tracing::info!(bus = %url, "event bus connected");
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        shared.publisher_up.store(false, Ordering::Relaxed);
                        shared.subscriber_up.store(false, Ordering::Relaxed);
                        tracing::warn!(bus = %url, "event bus connection lost; reconnecting");
                    }
                    other => tracing::debug!(bus = %url, event = %other, "event bus"),
                }
                shared.set_up();
            }
        })
        .connect(url)
        .await
        .map_err(|e| BusError::Url {
            url: redacted.clone(),
            reason: e.to_string(),
        })?;
    let subscriber = tokio::spawn(subscribe(
        client.clone(),
        prefix.clone(),
        shared,
        reprobe,
        redacted,
    ));
    let publisher = tokio::spawn(publish(client.clone(), outgoing));
    Ok((UpCheck::Nats(client), vec![subscriber, publisher]))
}

/// Subscribes to every event under the prefix and delivers them locally.
///
/// The subscription counts as established when a probe this instance publishes on the same
/// connection after subscribing comes back: the server handles a connection's messages in
/// order. (The client's `flush` only empties the local write buffer; it is no round trip.)
/// Probes go to `<prefix>._probe.<instance>`, which every instance skips. `reprobe` asks for
/// another probe after a reconnection.
async fn subscribe(
    client: async_nats::Client,
    prefix: SubjectPrefix,
    shared: LinkShared,
    reprobe: Arc<Notify>,
    url: String,
) {
    let subject = format!("{prefix}.>");
    let probes = format!("{prefix}._probe.");
    let probe = format!("{probes}{}", shared.instance);
    let mut backoff = Backoff::new();
    loop {
        match client.subscribe(subject.clone()).await {
            Ok(mut subscriber) => {
                send_probe(&client, &probe).await;
                loop {
                    let message = tokio::select! {
                        message = subscriber.next() => match message {
                            Some(message) => message,
                            None => break,
                        },
                        () = reprobe.notified() => {
                            send_probe(&client, &probe).await;
                            continue;
                        }
                    };
                    if message.subject.as_str().starts_with(&probes) {
                        if message.subject.as_str() == probe {
                            shared.subscriber_up.store(true, Ordering::Relaxed);
                            shared.set_up();
                            backoff.reset();
                        }
                        continue;
                    }
                    shared.deliver_remote(message.payload);
                }
                // The client only ends a subscription when it is closed for good.
                shared.subscriber_up.store(false, Ordering::Relaxed);
                shared.set_up();
                tracing::warn!(bus = %url, %subject, "event bus subscription ended");
            }
            Err(e) => {
                tracing::warn!(bus = %url, %subject, error = %e, "cannot subscribe to the event bus");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn send_probe(client: &async_nats::Client, probe: &str) {
    if let Err(e) = client.publish(probe.to_owned(), Bytes::new()).await {
        tracing::debug!(error = %e, "cannot send the subscription probe");
    }
}

/// Sends queued events.
async fn publish(client: async_nats::Client, mut outgoing: mpsc::Receiver<Outgoing>) {
    while let Some(Outgoing { subject, payload }) = outgoing.recv().await {
        match tokio::time::timeout(SEND_TIMEOUT, client.publish(subject, payload)).await {
            Ok(Ok(())) => metrics::event_bus_sent(),
            Ok(Err(e)) => {
                metrics::event_publish_failure("send");
                tracing::debug!(error = %e, "event not sent to NATS");
            }
            Err(_) => {
                metrics::event_publish_failure("timeout");
                tracing::debug!("event not sent to NATS within {SEND_TIMEOUT:?}");
            }
        }
    }
}
