//! The engine as its own process: the gRPC control API (`proto/engine.proto`), the server
//! that runs a [`Station`](crate::station::Station) behind it, and the typed
//! [`EngineClient`] a controller (the executor) uses.
//!
//! Enabled by the `process` feature (on by default); without it the crate is the plain
//! library, with no tokio or tonic.
//!
//! **Time base.** Every time on the wire is on the station clock, nanoseconds since the
//! engine started its station. [`Health`](client::Health) and every telemetry report carry
//! the station clock and the wall clock read together; [`ClockMap`] turns one into the other.
//!
//! **Security.** On a Unix socket or a loopback address a token is optional; on any other
//! address the server refuses to start without one. With a token, every call must carry
//! `authorization: Bearer <token>`, compared in constant time. On TCP the connection can be
//! mutual TLS ([`ServerTls`], [`ClientTls`]): the engine proves who it is with its
//! certificate and accepts only controllers with a client certificate from its authority.

pub mod client;
pub mod config;
pub mod server;
pub mod supervisor;

/// The messages and service of `proto/engine.proto`, as tonic-prost generates them.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]
pub mod proto {
    tonic::include_proto!("grimnir.engine.v1");
}

pub use client::{ClientError, ClientTls, EngineClient};
pub use server::{EngineServer, Listen, ServeError, ServerTls};
pub use supervisor::{Supervisor, SupervisorConfig, SupervisorError, SupervisorEvent};

/// The mapping between the station clock and the wall clock, from one reading of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMap {
    /// The station clock, ns.
    pub station_ns: i64,
    /// The wall clock at the same moment, ns since the Unix epoch.
    pub unix_ns: i64,
}

impl ClockMap {
    /// The station time of a wall-clock instant (ns since the Unix epoch).
    pub fn station_ns(&self, unix_ns: i64) -> i64 {
        unix_ns
            .saturating_sub(self.unix_ns)
            .saturating_add(self.station_ns)
    }

    /// The wall-clock instant (ns since the Unix epoch) of a station time.
    pub fn unix_ns(&self, station_ns: i64) -> i64 {
        station_ns
            .saturating_sub(self.station_ns)
            .saturating_add(self.unix_ns)
    }

    /// The station time of a UTC instant.
    pub fn station_ns_of(&self, at: chrono::DateTime<chrono::Utc>) -> i64 {
        self.station_ns(at.timestamp_nanos_opt().unwrap_or(i64::MAX))
    }
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::ClockMap;

    #[test]
    fn a_clock_map_goes_both_ways() {
        let map = ClockMap {
            station_ns: 5_000_000_000,
            unix_ns: 1_800_000_000_000_000_000,
        };
        assert_eq!(map.station_ns(1_800_000_001_000_000_000), 6_000_000_000);
        assert_eq!(map.unix_ns(6_000_000_000), 1_800_000_001_000_000_000);
        let t = chrono::DateTime::from_timestamp_nanos(1_800_000_000_500_000_000);
        assert_eq!(map.station_ns_of(t), 5_500_000_000);
    }
}
