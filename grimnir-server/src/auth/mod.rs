//! Authentication and authorization.
//!
//! - [`password`]: argon2id hashes for new passwords, bcrypt verified for imported users and
//!   replaced on their next sign-in.
//! - [`token`]: HS256 access tokens of 15 minutes, and refresh tokens stored as hashes.
//! - [`sessions`]: sign-in, refresh with rotation and reuse detection, sign-out, and turning a
//!   bearer token or an API key into a [`Principal`](policy::Principal).
//! - [`api_key`]: the API key format.
//! - [`policy`]: who may do what — the one function every handler asks.
//! - [`rate_limit`]: keyed token buckets.
//!
//! [`Auth`] holds the signing keys and the rate limiters; the HTTP layer keeps one in its state.

pub mod api_key;
pub mod password;
pub mod policy;
pub mod rate_limit;
pub mod sessions;
pub mod token;

use std::net::IpAddr;

use ipnet::IpNet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rate_limit::{Quota, RateLimiter};
use token::{JwtSecret, TokenKeys};

use crate::db::users::UserId;

/// The request rates allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Sign-in attempts per client address.
    pub login_per_address: Quota,
    /// Sign-in attempts per account (email), from anywhere.
    pub login_per_account: Quota,
    /// Requests to the public endpoints (sign-in, refresh, sign-out, the API document and its
    /// docs page) per client address.
    pub public_per_address: Quota,
    /// Authenticated requests per user (an API key counts for its user).
    pub per_user: Quota,
}

impl Default for RateLimits {
    /// 10 sign-ins a minute per address, 5 per account, 60 public requests a minute per
    /// address, 600 authenticated requests a minute per user.
    fn default() -> Self {
        RateLimits {
            login_per_address: Quota::per_minute(10),
            login_per_account: Quota::per_minute(5),
            public_per_address: Quota::per_minute(60),
            per_user: Quota::per_minute(600),
        }
    }
}

/// A request refused by a rate limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Time until the next request is allowed.
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Inner {
    keys: TokenKeys,
    trusted_proxies: Vec<IpNet>,
    limits: RateLimits,
    login_address: RateLimiter<IpAddr>,
    login_account: RateLimiter<String>,
    public_address: RateLimiter<IpAddr>,
    per_user: RateLimiter<UserId>,
    /// Principals of access tokens, read lately (see [`PRINCIPAL_TTL`]).
    principals: std::sync::Mutex<
        std::collections::HashMap<(UserId, crate::db::refresh_tokens::FamilyId), CachedPrincipal>,
    >,
}

/// How long a signed-in principal read from the database is used again without reading it
/// anew, unless something is written through this server first (which empties the cache at
/// once). A change made by another server instance sharing the database (a revoked session, a
/// role taken away) is seen within this long.
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(2);

/// The most principals kept; past it, expired ones are dropped, then all.
const PRINCIPAL_CACHE_MAX: usize = 10_000;

struct CachedPrincipal {
    principal: policy::Principal,
    read: Instant,
    generation: u64,
}

impl std::fmt::Debug for CachedPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedPrincipal").finish_non_exhaustive()
    }
}

/// Signing keys and rate limiters. Cloning is cheap and shares them.
#[derive(Debug, Clone)]
pub struct Auth(Arc<Inner>);

/// The key of requests whose client address is unknown (no socket behind them, as in tests
/// through `tower::ServiceExt::oneshot`): they share one bucket.
const UNKNOWN_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl Auth {
    /// Access tokens signed with `secret`, requests limited to `limits`, the peer of a
    /// connection taken as the client.
    pub fn new(secret: &JwtSecret, limits: RateLimits) -> Self {
        Self::behind_proxies(secret, limits, Vec::new())
    }

    /// Like [`Auth::new`], behind reverse proxies whose `X-Forwarded-For` is believed (see
    /// [`Auth::client_ip`]): every address in `trusted_proxies` (a single proxy is a network of
    /// one address, `10.0.0.1/32`).
    pub fn behind_proxies(
        secret: &JwtSecret,
        limits: RateLimits,
        trusted_proxies: Vec<IpNet>,
    ) -> Self {
        Auth(Arc::new(Inner {
            keys: TokenKeys::new(secret),
            trusted_proxies,
            limits,
            login_address: RateLimiter::new(limits.login_per_address),
            login_account: RateLimiter::new(limits.login_per_account),
            public_address: RateLimiter::new(limits.public_per_address),
            per_user: RateLimiter::new(limits.per_user),
            principals: Default::default(),
        }))
    }

    /// The principal of `session` as read at write `generation` within [`PRINCIPAL_TTL`].
    pub(crate) fn cached_principal(
        &self,
        user: UserId,
        session: crate::db::refresh_tokens::FamilyId,
        generation: u64,
    ) -> Option<policy::Principal> {
        let cache = self
            .0
            .principals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(&(user, session))
            .filter(|c| c.generation == generation && c.read.elapsed() < PRINCIPAL_TTL)
            .map(|c| c.principal.clone())
    }

    /// Keeps a principal read from the database at write `generation`.
    pub(crate) fn cache_principal(
        &self,
        user: UserId,
        session: crate::db::refresh_tokens::FamilyId,
        generation: u64,
        principal: &policy::Principal,
    ) {
        let mut cache = self
            .0
            .principals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= PRINCIPAL_CACHE_MAX {
            cache.retain(|_, c| c.generation == generation && c.read.elapsed() < PRINCIPAL_TTL);
            if cache.len() >= PRINCIPAL_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            (user, session),
            CachedPrincipal {
                principal: principal.clone(),
                read: Instant::now(),
                generation,
            },
        );
    }

    /// The access-token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.0.keys
    }

    /// The rates allowed.
    pub fn limits(&self) -> RateLimits {
        self.0.limits
    }

    /// The client's address: the connection's `peer`, unless the peer is a trusted proxy; then
    /// the last address of `X-Forwarded-For` (each proxy appends the address it saw) that is not
    /// a trusted proxy. Addresses a client wrote into the header itself come before those and
    /// are never used, so a client cannot pick its rate-limit bucket.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        // An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`.
        let trusted = |ip: &IpAddr| {
            let ip = ip.to_canonical();
            self.0.trusted_proxies.iter().any(|net| net.contains(&ip))
        };
        let peer = peer?;
        if !trusted(&peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or_default().rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => client = ip,
                Ok(ip) => return Some(ip),
                // Garbage in the header: stop at the last address known to be good.
                Err(_) => break,
            }
        }
        Some(client)
    }

    /// Counts a sign-in attempt from `address` for `email`.
    pub fn check_login(&self, address: Option<IpAddr>, email: &str) -> Result<(), Limited> {
        let now = Instant::now();
        let address = address.unwrap_or(UNKNOWN_ADDRESS);
        self.0
            .login_address
            .check(&address, now)
            .and_then(|()| {
                self.0
                    .login_account
                    .check(&email.trim().to_lowercase(), now)
            })
            .map_err(|retry_after| Limited { retry_after })
    }

    /// Counts a request to a public endpoint from `address`.
    pub fn check_public(&self, address: Option<IpAddr>) -> Result<(), Limited> {
        self.0
            .public_address
            .check(&address.unwrap_or(UNKNOWN_ADDRESS), Instant::now())
            .map_err(|retry_after| Limited { retry_after })
    }

    /// Counts an authenticated request of `user`.
    pub fn check_user(&self, user: UserId) -> Result<(), Limited> {
        self.0
            .per_user
            .check(&user, Instant::now())
            .map_err(|retry_after| Limited { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let secret: JwtSecret = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let direct = Auth::new(&secret, RateLimits::default());
        // No trusted proxy: the header is ignored.
        assert_eq!(
            direct.client_ip(Some(ip("198.51.100.1")), Some("203.0.113.9")),
            Some(ip("198.51.100.1"))
        );
        let proxied = Auth::behind_proxies(
            &secret,
            RateLimits::default(),
            vec![ip("10.0.0.1").into(), ip("10.0.0.2").into()],
        );
        // Through two proxies; the client claimed to be 1.2.3.4 first.
        assert_eq!(
            proxied.client_ip(Some(ip("10.0.0.1")), Some("1.2.3.4, 203.0.113.9, 10.0.0.2")),
            Some(ip("203.0.113.9"))
        );
        // An untrusted peer's header is not believed.
        assert_eq!(
            proxied.client_ip(Some(ip("198.51.100.7")), Some("203.0.113.9")),
            Some(ip("198.51.100.7"))
        );
        // A trusted peer without the header, or with garbage in it.
        assert_eq!(
            proxied.client_ip(Some(ip("10.0.0.1")), None),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            proxied.client_ip(Some(ip("10.0.0.1")), Some("nonsense, 10.0.0.2")),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(proxied.client_ip(None, Some("203.0.113.9")), None);

        // Proxies given as networks (a container network, say); v4-mapped peers match too.
        let networks = Auth::behind_proxies(
            &secret,
            RateLimits::default(),
            vec![
                "172.16.0.0/12".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ],
        );
        assert_eq!(
            networks.client_ip(Some(ip("172.18.0.5")), Some("203.0.113.9, 172.31.255.1")),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            networks.client_ip(Some(ip("::ffff:172.18.0.5")), Some("203.0.113.9")),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            networks.client_ip(Some(ip("fd12::7")), Some("2001:db8::1")),
            Some(ip("2001:db8::1"))
        );
        // Just outside the network: not a proxy.
        assert_eq!(
            networks.client_ip(Some(ip("172.32.0.1")), Some("203.0.113.9")),
            Some(ip("172.32.0.1"))
        );
    }
}
