//! The event bus: one type over three transports, chosen by URL.
//!
//! Every instance delivers what it publishes to its own subscribers at once, in process, and
//! sends it to the shared bus (NATS or Redis) for the other instances. What comes back from the
//! bus is delivered to local subscribers unless this instance published it (the envelope's
//! `origin`), so each local subscriber sees each event once.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::model::{Envelope, Event, EventType};
use super::{nats, redis};
use crate::metrics;

/// Where events go: this process only, NATS or Redis.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventBusUrl {
    /// `memory`: in this process only (one instance).
    Memory,
    /// `nats://host:port` (also `tls://`, and `user:password@` or `token@` in the authority).
    Nats(String),
    /// `redis://host:port[/db]` (with `:password@` or `user:password@` in the authority).
    Redis(String),
}

/// An event bus URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BusUrlError {
    /// What is wrong.
    pub reason: String,
}

impl FromStr for EventBusUrl {
    type Err = BusUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("memory") {
            return Ok(EventBusUrl::Memory);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(BusUrlError {
                reason: "expected `memory`, `nats://host:port` or `redis://host:port`".to_owned(),
            });
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(BusUrlError {
                reason: "the URL names no host".to_owned(),
            });
        }
        match scheme.to_ascii_lowercase().as_str() {
            "nats" | "tls" => Ok(EventBusUrl::Nats(s.to_owned())),
            "redis" => Ok(EventBusUrl::Redis(s.to_owned())),
            "rediss" => Err(BusUrlError {
                reason: "Redis over TLS (`rediss://`) is not built in; use `redis://` on a \
                         trusted network or NATS over TLS (`tls://`)"
                    .to_owned(),
            }),
            other => Err(BusUrlError {
                reason: format!(
                    "unknown event bus URL scheme {other:?}; expected `memory`, `nats://` or `redis://`"
                ),
            }),
        }
    }
}

/// Hides a password (or token) in the authority of a URL.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Display for EventBusUrl {
    /// The URL with any password or token replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventBusUrl::Memory => f.write_str("memory"),
            EventBusUrl::Nats(url) | EventBusUrl::Redis(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for EventBusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventBusUrl({self})")
    }
}

/// The first part of every subject (NATS) and channel (Redis): `grimnir.events` by default.
///
/// Dot-separated tokens of ASCII letters, digits, `_` and `-`, so that it is a literal in both
/// NATS subjects and Redis glob patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPrefix(String);

impl SubjectPrefix {
    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SubjectPrefix {
    fn default() -> Self {
        SubjectPrefix("grimnir.events".to_owned())
    }
}

impl FromStr for SubjectPrefix {
    type Err = BusUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if ok {
            Ok(SubjectPrefix(s.to_owned()))
        } else {
            Err(BusUrlError {
                reason: "expected dot-separated tokens of letters, digits, `_` and `-` \
                         (such as `grimnir.events`)"
                    .to_owned(),
            })
        }
    }
}

impl fmt::Display for SubjectPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the bus is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBusConfig {
    /// Which transport.
    pub url: EventBusUrl,
    /// The first part of subjects and channels.
    pub prefix: SubjectPrefix,
    /// Events a subscriber may fall behind by before it misses some (and is told so).
    pub buffer: usize,
}

/// Smallest and largest [`EventBusConfig::buffer`].
pub const BUFFER_RANGE: std::ops::RangeInclusive<usize> = 16..=65_536;

impl Default for EventBusConfig {
    fn default() -> Self {
        EventBusConfig {
            url: EventBusUrl::Memory,
            prefix: SubjectPrefix::default(),
            buffer: 1024,
        }
    }
}

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The client library refused the URL.
    #[error("event bus {url}: {reason}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What the client library said.
        reason: String,
    },
    /// The buffer size is out of range.
    #[error("event bus buffer {0} is not between 16 and 65536")]
    Buffer(usize),
}

/// Why an event reached only this instance's subscribers, not the bus.
///
/// Publishing never waits for the network: the event is handed to a bounded queue that a
/// background task sends from, and refused at once when the bus is down or the queue is full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bus is not connected (it is being reconnected in the background).
    #[error("event bus {bus} is not connected; event {event_id} delivered on this instance only")]
    Unavailable {
        /// The bus, password hidden.
        bus: String,
        /// The event.
        event_id: Uuid,
    },
    /// More events are waiting to be sent than the queue holds.
    #[error("event bus send queue is full; event {event_id} delivered on this instance only")]
    Backlog {
        /// The event.
        event_id: Uuid,
    },
    /// The bus has been shut down.
    #[error("event bus is shut down; event {event_id} delivered on this instance only")]
    Closed {
        /// The event.
        event_id: Uuid,
    },
    /// The event could not be encoded as JSON.
    #[error("event {event_id} cannot be encoded: {reason}")]
    Encode {
        /// The event.
        event_id: Uuid,
        /// What serde said.
        reason: String,
    },
}

impl PublishError {
    /// A short name for the `reason` label of `grimnir_events_publish_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::Unavailable { .. } => "unavailable",
            PublishError::Backlog { .. } => "backlog",
            PublishError::Closed { .. } => "closed",
            PublishError::Encode { .. } => "encode",
        }
    }
}

/// An event as subscribers receive it: the envelope, and its JSON text, encoded once for every
/// subscriber.
#[derive(Debug)]
pub struct Delivery {
    envelope: Envelope,
    json: Bytes,
}

impl Delivery {
    /// The event.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Its JSON text as bytes (valid UTF-8).
    pub fn json_bytes(&self) -> &Bytes {
        &self.json
    }

    /// Its JSON text.
    pub fn json(&self) -> &str {
        // Valid UTF-8 by construction: encoded by serde_json, or checked when received.
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind by more than the buffer and missed this many events; the
    /// next call returns the oldest event still held.
    #[error("missed {0} events")]
    Lagged(u64),
    /// The bus is gone.
    #[error("the event bus is shut down")]
    Closed,
}

/// One subscriber's view of the events on this instance (local and from the bus).
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Delivery>>,
}

impl Subscription {
    /// The next event. A subscriber that does not keep up is never waited for: it misses
    /// events and learns how many through [`RecvError::Lagged`].
    pub async fn recv(&mut self) -> Result<Arc<Delivery>, RecvError> {
        match self.rx.recv().await {
            Ok(delivery) => Ok(delivery),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => Err(RecvError::Closed),
        }
    }
}

/// An event on its way to the bus.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// `<prefix>.<station>.<type>`.
    pub(super) subject: String,
    /// The envelope as JSON.
    pub(super) payload: Bytes,
}

/// Events waiting to be sent to the bus, at most.
const SEND_QUEUE: usize = 4096;

/// How long one send to the bus may take before it counts as failed.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Reconnection delays: 100 ms doubling to 5 s, back to 100 ms after a success.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(super) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt.
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(super) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The `attempt`th delay (1-based), for client libraries that ask by attempt number.
    pub(super) fn nth(attempt: usize) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        Self::FIRST
            .checked_mul(2u32.saturating_pow(doublings.min(16)))
            .map_or(Self::MAX, |d| d.min(Self::MAX))
    }
}

/// What the remote link tasks share with the bus: where to deliver, and whether the link is up.
#[derive(Debug, Clone)]
pub(super) struct LinkShared {
    /// This instance's id: events with it as `origin` are this instance's own echoes.
    pub(super) instance: Uuid,
    /// Local subscribers.
    pub(super) local: broadcast::Sender<Arc<Delivery>>,
    /// The publishing side is connected.
    pub(super) publisher_up: Arc<AtomicBool>,
    /// The subscription is established on the server.
    pub(super) subscriber_up: Arc<AtomicBool>,
}

impl LinkShared {
    /// Delivers a message from the bus to local subscribers, unless this instance sent it.
    pub(super) fn deliver_remote(&self, payload: Bytes) {
        let envelope = match std::str::from_utf8(&payload)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Envelope>(text).map_err(|e| e.to_string()))
        {
            Ok(envelope) => envelope,
            Err(reason) => {
                metrics::event_bus_decode_failure();
                tracing::debug!(%reason, "ignoring a bus message that is not an event");
                return;
            }
        };
        if envelope.origin == self.instance {
            return;
        }
        metrics::event_received(envelope.event_type());
        // No receivers is not an error: nobody is listening on this instance right now.
        let _ = self.local.send(Arc::new(Delivery {
            envelope,
            json: payload,
        }));
    }

    pub(super) fn set_up(&self) {
        let up =
            self.publisher_up.load(Ordering::Relaxed) && self.subscriber_up.load(Ordering::Relaxed);
        metrics::event_bus_up(up);
    }
}

/// How to tell whether the publishing side of a link is connected.
#[derive(Debug)]
pub(super) enum UpCheck {
    /// A flag the link's tasks keep.
    Flag(Arc<AtomicBool>),
    /// The NATS client's own connection state.
    Nats(async_nats::Client),
}

impl UpCheck {
    fn is_up(&self) -> bool {
        match self {
            UpCheck::Flag(flag) => flag.load(Ordering::Relaxed),
            UpCheck::Nats(client) => {
                client.connection_state() == async_nats::connection::State::Connected
            }
        }
    }
}

/// The transport behind a bus.
#[derive(Debug)]
enum Link {
    Memory,
    Remote(Box<RemoteLink>),
}

/// A NATS or Redis link: the queue its publisher task sends from, and its tasks.
#[derive(Debug)]
struct RemoteLink {
    url: EventBusUrl,
    queue: mpsc::Sender<Outgoing>,
    is_up: UpCheck,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    instance: Uuid,
    prefix: SubjectPrefix,
    local: broadcast::Sender<Arc<Delivery>>,
    link: Link,
    subscriber_up: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Link::Remote(remote) = &self.link {
            for task in &remote.tasks {
                task.abort();
            }
        }
    }
}

/// The event bus of one server instance. Cheap to clone; the connection closes when the last
/// clone is dropped.
///
/// ```
/// use grimnir_server::events::{Event, EventBus, SilenceDetected};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::memory();
/// let mut subscription = bus.subscribe();
/// let station = uuid::Uuid::new_v4();
/// bus.publish(
///     station,
///     Event::SilenceDetected(SilenceDetected { duration_ms: 5_000, threshold_dbfs: -60.0 }),
/// )?;
/// let delivery = subscription.recv().await?;
/// assert_eq!(delivery.envelope().station_id, station);
/// assert!(delivery.json().contains(r#""type":"silence_detected""#));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl EventBus {
    /// A bus within this process, with the default buffer.
    pub fn memory() -> Self {
        Self::memory_with_buffer(EventBusConfig::default().buffer)
    }

    /// A bus within this process whose subscribers may fall `buffer` events behind (at least 1).
    pub fn memory_with_buffer(buffer: usize) -> Self {
        let (local, _) = broadcast::channel(buffer.max(1));
        EventBus {
            inner: Arc::new(Inner {
                instance: Uuid::new_v4(),
                prefix: SubjectPrefix::default(),
                local,
                link: Link::Memory,
                subscriber_up: Arc::new(AtomicBool::new(true)),
            }),
        }
    }

    /// Sets up the bus `config` names. Never waits for the server: connecting, and reconnecting
    /// after a loss, happen in the background with backoff, and until then events reach this
    /// instance's subscribers only. Must be called within a tokio runtime.
    pub async fn connect(config: &EventBusConfig) -> Result<Self, BusError> {
        if !BUFFER_RANGE.contains(&config.buffer) {
            return Err(BusError::Buffer(config.buffer));
        }
        let instance = Uuid::new_v4();
        let (local, _) = broadcast::channel(config.buffer);
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        let shared = LinkShared {
            instance,
            local: local.clone(),
            publisher_up: Arc::new(AtomicBool::new(false)),
            subscriber_up: Arc::new(AtomicBool::new(false)),
        };
        let subscriber_up = shared.subscriber_up.clone();
        let (is_up, tasks) = match &config.url {
            EventBusUrl::Memory => return Ok(Self::memory_with_buffer(config.buffer)),
            EventBusUrl::Nats(url) => nats::start(url, &config.prefix, shared, outgoing).await?,
            EventBusUrl::Redis(url) => redis::start(url, &config.prefix, shared, outgoing)?,
        };
        tracing::info!(bus = %config.url, %instance, prefix = %config.prefix, "event bus set up");
        Ok(EventBus {
            inner: Arc::new(Inner {
                instance,
                prefix: config.prefix.clone(),
                local,
                link: Link::Remote(Box::new(RemoteLink {
                    url: config.url.clone(),
                    queue,
                    is_up,
                    tasks,
                })),
                subscriber_up,
            }),
        })
    }

    /// This instance's id, the `origin` of the events it publishes.
    pub fn instance_id(&self) -> Uuid {
        self.inner.instance
    }

    /// The subject (NATS) or channel (Redis) an event of `event_type` for `station` goes to:
    /// `<prefix>.<station>.<type>`.
    pub fn subject(&self, station: Uuid, event_type: EventType) -> String {
        subject(&self.inner.prefix, station, event_type)
    }

    /// Whether events published now reach the other instances and theirs reach this one:
    /// always for the in-process bus; for NATS and Redis, while connected and subscribed.
    pub fn is_connected(&self) -> bool {
        match &self.inner.link {
            Link::Memory => true,
            Link::Remote(remote) => {
                remote.is_up.is_up() && self.inner.subscriber_up.load(Ordering::Relaxed)
            }
        }
    }

    /// Waits until [`EventBus::is_connected`], for at most `timeout`; returns whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_connected() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many subscribers this instance has now (open event streams, and in-process
    /// listeners such as the webhook relay).
    pub fn subscribers(&self) -> usize {
        self.inner.local.receiver_count()
    }

    /// A new subscriber to every event on this instance from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.inner.local.subscribe(),
        }
    }

    /// Publishes `event` about `station`; returns the event's id.
    ///
    /// Never waits: the event is delivered to this instance's subscribers at once and queued
    /// for the bus. An `Err` means it reached this instance's subscribers but not the bus
    /// (down, or too far behind); it is logged at debug level and counted in
    /// `grimnir_events_publish_failures_total`, and the caller may go on as if nothing
    /// happened — playout never depends on the bus.
    pub fn publish(&self, station: Uuid, event: Event) -> Result<Uuid, PublishError> {
        let envelope = Envelope::new(station, self.inner.instance, event);
        let result = self.publish_envelope(envelope);
        if let Err(e) = &result {
            metrics::event_publish_failure(e.reason());
            tracing::debug!(error = %e, "event not sent to the bus");
        }
        result
    }

    fn publish_envelope(&self, envelope: Envelope) -> Result<Uuid, PublishError> {
        let event_id = envelope.id;
        let event_type = envelope.event_type();
        let json = serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .map_err(|e| PublishError::Encode {
                event_id,
                reason: e.to_string(),
            })?;
        metrics::event_published(event_type);
        let subject = subject(&self.inner.prefix, envelope.station_id, event_type);
        let _ = self.inner.local.send(Arc::new(Delivery {
            envelope,
            json: json.clone(),
        }));
        let Link::Remote(remote) = &self.inner.link else {
            return Ok(event_id);
        };
        if !self.is_connected() {
            return Err(PublishError::Unavailable {
                bus: remote.url.to_string(),
                event_id,
            });
        }
        remote
            .queue
            .try_send(Outgoing {
                subject,
                payload: json,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PublishError::Backlog { event_id },
                mpsc::error::TrySendError::Closed(_) => PublishError::Closed { event_id },
            })?;
        Ok(event_id)
    }
}

/// `<prefix>.<station>.<type>`.
pub(super) fn subject(prefix: &SubjectPrefix, station: Uuid, event_type: EventType) -> String {
    format!("{prefix}.{station}.{event_type}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::events::model::BufferHealth;

    fn buffer_event(dropouts: u64) -> Event {
        Event::BufferHealth(BufferHealth {
            depth_samples: 4800,
            sample_rate: 48_000,
            dropouts,
        })
    }

    #[test]
    fn urls_pick_the_transport_and_hide_passwords() {
        assert_eq!(
            "memory".parse::<EventBusUrl>().unwrap(),
            EventBusUrl::Memory
        );
        assert_eq!(
            "nats://127.0.0.1:4222".parse::<EventBusUrl>().unwrap(),
            EventBusUrl::Nats("nats://127.0.0.1:4222".to_owned())
        );
        let redis: EventBusUrl = "redis://:s3cret@127.0.0.1:6379/2".parse().unwrap();
        assert!(matches!(redis, EventBusUrl::Redis(_)));
        assert_eq!(redis.to_string(), "redis://:***@127.0.0.1:6379/2");
        assert!(!format!("{redis:?}").contains("s3cret"));
        let nats: EventBusUrl = "nats://dj:pw@10.0.0.1:4222".parse().unwrap();
        assert_eq!(nats.to_string(), "nats://dj:***@10.0.0.1:4222");
        for bad in [
            "kafka://x:1",
            "127.0.0.1:4222",
            "nats://",
            "redis:///x",
            "rediss://h:6380",
            "",
        ] {
            assert!(bad.parse::<EventBusUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_literal_in_subjects_and_patterns() {
        assert_eq!(SubjectPrefix::default().as_str(), "grimnir.events");
        assert!("radio-1.events_v2".parse::<SubjectPrefix>().is_ok());
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", "a[1]"] {
            assert!(bad.parse::<SubjectPrefix>().is_err(), "{bad:?}");
        }
        let station = Uuid::nil();
        assert_eq!(
            subject(&SubjectPrefix::default(), station, EventType::NowPlaying),
            "grimnir.events.00000000-0000-0000-0000-000000000000.now_playing"
        );
    }

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_delay().as_millis(), 100);
        assert_eq!(Backoff::nth(0).as_millis(), 100);
        assert_eq!(Backoff::nth(1).as_millis(), 100);
        assert_eq!(Backoff::nth(3).as_millis(), 400);
        assert_eq!(Backoff::nth(usize::MAX).as_millis(), 5000);
    }

    #[tokio::test]
    async fn memory_bus_delivers_to_every_subscriber_once_in_order() {
        let bus = EventBus::memory();
        assert!(bus.is_connected());
        assert_eq!(bus.subscribers(), 0);
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        assert_eq!(bus.subscribers(), 2);
        drop(bus.subscribe());
        assert_eq!(
            bus.subscribers(),
            2,
            "a dropped subscription is no longer counted"
        );
        let station = Uuid::new_v4();
        let ids: Vec<Uuid> = (0..3)
            .map(|n| bus.publish(station, buffer_event(n)).unwrap())
            .collect();
        for subscription in [&mut first, &mut second] {
            for id in &ids {
                let delivery = subscription.recv().await.unwrap();
                assert_eq!(delivery.envelope().id, *id);
                assert_eq!(delivery.envelope().origin, bus.instance_id());
                let back: Envelope = serde_json::from_str(delivery.json()).unwrap();
                assert_eq!(&back, delivery.envelope());
            }
        }
        let nothing_more = tokio::time::timeout(Duration::from_millis(50), first.recv()).await;
        assert!(nothing_more.is_err(), "one publish, one delivery");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_much_it_missed() {
        let bus = EventBus::memory_with_buffer(16);
        let mut slow = bus.subscribe();
        let mut fast = bus.subscribe();
        let station = Uuid::new_v4();
        for n in 0..40 {
            bus.publish(station, buffer_event(n)).unwrap();
            // The fast one keeps up; the slow one reads nothing.
            assert!(fast.recv().await.is_ok());
        }
        assert_eq!(slow.recv().await.unwrap_err(), RecvError::Lagged(24));
        let oldest_kept = slow.recv().await.unwrap();
        let Event::BufferHealth(b) = &oldest_kept.envelope().event else {
            panic!("{oldest_kept:?}");
        };
        assert_eq!(b.dropouts, 24);
    }

    #[tokio::test]
    async fn a_bad_buffer_is_refused() {
        let config = EventBusConfig {
            buffer: 8,
            ..EventBusConfig::default()
        };
        assert!(matches!(
            EventBus::connect(&config).await,
            Err(BusError::Buffer(8))
        ));
    }
}
