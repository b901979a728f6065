//! [`EngineClient`]: the typed client a controller (the executor) uses to drive an engine.
//!
//! A dead engine is noticed three ways, the first that fires wins: a call fails with
//! [`ClientError::Gone`] (a killed process closes its socket at once); the telemetry stream
//! ends or fails ([`Updates::next_within`]); or the stream stays silent past the bound given
//! to [`Updates::next_within`] (telemetry comes every second, so 1.5 s of silence is a hung
//! engine). HTTP/2 keepalive pings every 500 ms also break a connection whose peer vanished
//! without closing it.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::ClockMap;
use super::proto;
use super::server::Listen;

/// How long a call may take before the engine counts as unresponsive.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the connection is pinged, and how long a ping may go unanswered.
const KEEPALIVE: Duration = Duration::from_millis(500);

/// What went wrong talking to an engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The engine could not be reached.
    #[error("cannot connect to the engine at {target}: {reason}")]
    Connect {
        /// Where.
        target: String,
        /// Why.
        reason: String,
    },
    /// The engine refused the call; the message names what is wrong. Nothing changed.
    #[error("the engine refused the call ({code:?}): {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// What the engine said.
        message: String,
    },
    /// The connection broke or the engine is gone.
    #[error("the engine is gone: {0}")]
    Gone(String),
    /// The engine did not answer in time.
    #[error("the engine did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> ClientError {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
                ClientError::Gone(status.message().to_owned())
            }
            code => ClientError::Refused {
                code,
                message: status.message().to_owned(),
            },
        }
    }
}

/// Adds the shared token to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Inner = proto::engine_client::EngineClient<InterceptedService<Channel, Bearer>>;

/// What an engine said about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The station clock and the wall clock, read together.
    pub clock: ClockMap,
    /// Everything else the engine reported.
    pub reply: proto::HealthReply,
}

/// A client of one engine. Cheap to clone: clones share the connection.
#[derive(Debug, Clone)]
pub struct EngineClient {
    inner: Inner,
}

/// An item with an id and a media file, everything else at its default (whole file, no
/// fades, equal-power curve). Set the other fields of the returned [`proto::Item`] directly.
pub fn item(id: impl Into<String>, media: impl Into<String>) -> proto::Item {
    proto::Item {
        id: id.into(),
        media: media.into(),
        ..proto::Item::default()
    }
}

/// How a client reaches an engine over TLS (PEM text): the authority that signed the
/// engine's certificate, the name on it, and the client's own certificate and key.
#[derive(Clone)]
pub struct ClientTls {
    /// The certificate authority to trust for the engine.
    pub ca: String,
    /// The name the engine's certificate is for (a DNS name or an IP address).
    pub domain: String,
    /// The client's certificate chain.
    pub cert: String,
    /// The client's private key.
    pub key: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl EngineClient {
    /// Connects to the engine at `target`, with the shared token if the engine has one.
    pub async fn connect(
        target: &Listen,
        token: Option<&str>,
    ) -> Result<EngineClient, ClientError> {
        EngineClient::connect_with(target, token, None).await
    }

    /// [`EngineClient::connect`], over mutual TLS when `tls` is given (TCP only).
    pub async fn connect_with(
        target: &Listen,
        token: Option<&str>,
        tls: Option<&ClientTls>,
    ) -> Result<EngineClient, ClientError> {
        let fail = |reason: String| ClientError::Connect {
            target: target.to_string(),
            reason,
        };
        let bearer = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| fail("the token is not printable ASCII".into()))?,
            ),
            None => None,
        };
        let uri = match (target, tls) {
            (Listen::Tcp(addr), None) => format!("http://{addr}"),
            (Listen::Tcp(addr), Some(_)) => format!("https://{addr}"),
            // Any authority will do: the connector below ignores it.
            (Listen::Unix(_), None) => "http://engine.invalid".to_owned(),
            (Listen::Unix(_), Some(_)) => {
                return Err(fail(
                    "TLS is for TCP addresses; a Unix socket is already local".into(),
                ));
            }
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| fail(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            let config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca))
                .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key))
                .domain_name(tls.domain.clone());
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| fail(format!("TLS: {}", source_chain(&e))))?;
        }
        let channel = match target {
            Listen::Tcp(_) => endpoint.connect().await,
            Listen::Unix(path) => {
                let path: PathBuf = path.clone();
                endpoint
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
            }
        }
        .map_err(|e| fail(source_chain(&e)))?;
        Ok(EngineClient {
            inner: proto::engine_client::EngineClient::with_interceptor(channel, Bearer(bearer)),
        })
    }

    /// Replaces the DSP graph (YAML or JSON text).
    pub async fn load_graph(&mut self, graph: &str) -> Result<(), ClientError> {
        let request = proto::LoadGraphRequest {
            graph: graph.to_owned(),
        };
        timed(self.inner.load_graph(request)).await?;
        Ok(())
    }

    /// Plays `item` at station time `at_ns`, or now. Returns the station time it is
    /// scheduled for.
    pub async fn play(
        &mut self,
        item: proto::Item,
        at_ns: Option<i64>,
    ) -> Result<i64, ClientError> {
        let request = proto::PlayRequest {
            item: Some(item),
            at_ns,
        };
        Ok(timed(self.inner.play(request)).await?.at_ns)
    }

    /// Queues items at their station times; with `replace`, every item not yet started is
    /// cancelled first. All or nothing. Returns how many items wait to start.
    pub async fn queue(
        &mut self,
        items: impl IntoIterator<Item = (proto::Item, i64)>,
        replace: bool,
    ) -> Result<u32, ClientError> {
        let request = proto::QueueRequest {
            items: items
                .into_iter()
                .map(|(item, at_ns)| proto::QueuedItem {
                    item: Some(item),
                    at_ns,
                })
                .collect(),
            replace,
        };
        Ok(timed(self.inner.queue(request)).await?.pending)
    }

    /// Stops one item (cancels it if it has not started).
    pub async fn stop(&mut self, id: &str) -> Result<(), ClientError> {
        let request = proto::StopRequest {
            target: Some(proto::stop_request::Target::Id(id.to_owned())),
        };
        timed(self.inner.stop(request)).await?;
        Ok(())
    }

    /// Stops everything.
    pub async fn stop_all(&mut self) -> Result<(), ClientError> {
        let request = proto::StopRequest {
            target: Some(proto::stop_request::Target::All(true)),
        };
        timed(self.inner.stop(request)).await?;
        Ok(())
    }

    /// Fades item `id` out over `length` from station time `at_ns` (or now).
    pub async fn fade(
        &mut self,
        id: &str,
        at_ns: Option<i64>,
        length: Duration,
    ) -> Result<(), ClientError> {
        let request = proto::FadeRequest {
            id: id.to_owned(),
            at_ns,
            length_ns: i64::try_from(length.as_nanos()).unwrap_or(i64::MAX),
        };
        timed(self.inner.fade(request)).await?;
        Ok(())
    }

    /// Cuts `item` in at once, above everything. Returns the station time the engine took
    /// the call.
    pub async fn insert_emergency(&mut self, item: proto::Item) -> Result<i64, ClientError> {
        let request = proto::InsertEmergencyRequest { item: Some(item) };
        Ok(timed(self.inner.insert_emergency(request))
            .await?
            .received_ns)
    }

    /// Routes the live source on `mount` to air as item `id`, at once if a source client is
    /// connected there (returns `true`), else as soon as one connects. With `take_air`, the
    /// items on air fade out over `fade_in` as it comes in.
    pub async fn route_live(
        &mut self,
        id: &str,
        mount: &str,
        fade_in: Duration,
        take_air: bool,
    ) -> Result<bool, ClientError> {
        let request = proto::RouteLiveRequest {
            id: id.to_owned(),
            mount: mount.to_owned(),
            fade_in_ns: i64::try_from(fade_in.as_nanos()).unwrap_or(i64::MAX),
            take_air,
            title: String::new(),
            artist: String::new(),
        };
        Ok(timed(self.inner.route_live(request)).await?.connected)
    }

    /// The engine's health, clock mapping and what it holds.
    pub async fn health(&mut self) -> Result<Health, ClientError> {
        let reply = timed(self.inner.health(proto::HealthRequest {})).await?;
        Ok(Health {
            clock: ClockMap {
                station_ns: reply.station_ns,
                unix_ns: reply.unix_ns,
            },
            reply,
        })
    }

    /// The station's telemetry (every second) and events, from now on.
    pub async fn updates(&mut self) -> Result<Updates, ClientError> {
        let stream = timed(
            self.inner
                .stream_telemetry(proto::StreamTelemetryRequest {}),
        )
        .await?;
        Ok(Updates { stream })
    }
}

/// The stream of a station's updates.
#[derive(Debug)]
pub struct Updates {
    stream: tonic::Streaming<proto::StationUpdate>,
}

/// One update: telemetry, an item started, ended or failed, an output's state, a warning.
pub type Update = proto::station_update::Update;

impl Updates {
    /// The next update, waiting at most `within`. An engine that ends the stream, breaks
    /// the connection or stays silent that long is [`ClientError::Gone`] or
    /// [`ClientError::Timeout`]: telemetry comes every second, so a bound of 1.5 s notices
    /// a dead or hung engine within it.
    pub async fn next_within(&mut self, within: Duration) -> Result<Update, ClientError> {
        loop {
            match tokio::time::timeout(within, self.stream.message()).await {
                Err(_) => return Err(ClientError::Timeout(within)),
                Ok(Err(status)) => return Err(ClientError::Gone(status.message().to_owned())),
                Ok(Ok(None)) => return Err(ClientError::Gone("the stream ended".into())),
                Ok(Ok(Some(proto::StationUpdate { update: Some(u) }))) => return Ok(u),
                // An update of a kind this client does not know: skip it.
                Ok(Ok(Some(_))) => {}
            }
        }
    }
}

async fn timed<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Err(_) => Err(ClientError::Timeout(CALL_TIMEOUT)),
        Ok(reply) => Ok(reply?.into_inner()),
    }
}

/// An error with its causes, which is where transport errors say what happened.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
