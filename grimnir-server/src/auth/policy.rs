//! Who may do what: one function, [`allows`], that every handler calls.
//!
//! A [`Principal`] is whoever made the request: a user signed in with an access token, or an
//! API key acting for the user who created it. Admins (the [`AccountRole::Admin`] account role)
//! may do everything everywhere. Everyone else acts at a station through a [`StationRole`] given
//! there (manager or DJ); an API key acts at its one station with its role, and never with more
//! than its user has there now.
//!
//! # The table
//!
//! "S" is the station the request concerns; "✓ S" means allowed where the principal has that
//! role at S. API keys are allowed only where the last column says so, and then with their role.
//!
//! | action | admin | manager of S | DJ of S | API key of S |
//! | --- | --- | --- | --- | --- |
//! | [`StationList`](Action::StationList) | ✓ all stations | ✓ own stations | ✓ own stations | ✓ its station |
//! | [`StationRead`](Action::StationRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`StationUpdate`](Action::StationUpdate) | ✓ | ✓ S | — | ✓ if manager |
//! | [`StationCreate`](Action::StationCreate) | ✓ | — | — | — |
//! | [`StationDelete`](Action::StationDelete) | ✓ | — | — | — |
//! | [`MemberRead`](Action::MemberRead) | ✓ | ✓ S | — | ✓ if manager |
//! | [`MemberWrite`](Action::MemberWrite) | ✓ | ✓ S | — | — |
//! | [`ApiKeyRead`](Action::ApiKeyRead) | ✓ | ✓ S | — | — |
//! | [`ApiKeyWrite`](Action::ApiKeyWrite) | ✓ | ✓ S | — | — |
//! | [`AuditRead`](Action::AuditRead) | ✓ all | ✓ S | — | — |
//! | [`EventRead`](Action::EventRead) (the event stream) | ✓ all stations | ✓ S | ✓ S | ✓ |
//! | [`UserAdmin`](Action::UserAdmin) (list, create, read, update, delete users) | ✓ | — | — | — |
//! | [`SelfRead`](Action::SelfRead) | ✓ | ✓ | ✓ | ✓ |
//! | [`PasswordChange`](Action::PasswordChange) (one's own) | ✓ | ✓ | ✓ | — |
//! | [`DspGraphRead`](Action::DspGraphRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`DspGraphWrite`](Action::DspGraphWrite) (create, change, delete, apply) | ✓ | ✓ S | — | ✓ if manager |
//! | [`ProgrammeRead`](Action::ProgrammeRead) (smart blocks, clocks, shows, grid; previews) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`ProgrammeWrite`](Action::ProgrammeWrite) | ✓ | ✓ S | — | ✓ if manager |
//! | [`ScheduleRead`](Action::ScheduleRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`ScheduleWrite`](Action::ScheduleWrite) (refresh, edit entries) | ✓ | ✓ S | — | ✓ if manager |
//! | [`PriorityRead`](Action::PriorityRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`PriorityWrite`](Action::PriorityWrite) (sources, tier 1 override) | ✓ | ✓ S | — | ✓ if manager |
//! | [`PriorityEmergency`](Action::PriorityEmergency) (tier 0) | ✓ | ✓ S | — | ✓ if manager |
//! | [`ExecutorStateRead`](Action::ExecutorStateRead) | ✓ all | ✓ S | ✓ S | ✓ |
//! | [`PlayoutControl`](Action::PlayoutControl) (skip, stop, reload) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`AnalyticsRead`](Action::AnalyticsRead) (now playing, spins) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`LiveSession`](Action::LiveSession) (authorize, hand over, release) | ✓ | ✓ S | ✓ S | — |
//! | [`TrackReport`](Action::TrackReport) (the track-start webhook) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`MediaRead`](Action::MediaRead) (list, get, download media; list tags) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`MediaWrite`](Action::MediaWrite) (upload, edit metadata and cues, tag and untag) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`MediaDelete`](Action::MediaDelete) | ✓ | ✓ S | — | ✓ if manager |
//! | [`TagWrite`](Action::TagWrite) (create and delete tags) | ✓ | ✓ S | — | ✓ if manager |
//! | [`MigrationAdmin`](Action::MigrationAdmin) (import jobs from other systems) | ✓ | — | — | — |
//! | [`EncoderPresetRead`](Action::EncoderPresetRead) (shared by all stations) | ✓ | ✓ | ✓ | ✓ |
//! | [`EncoderPresetWrite`](Action::EncoderPresetWrite) (create, change, delete) | ✓ | — | — | — |
//! | [`MountRead`](Action::MountRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`MountWrite`](Action::MountWrite) (create, change, delete) | ✓ | ✓ S | — | ✓ if manager |
//! | [`WebstreamRead`](Action::WebstreamRead) | ✓ | ✓ S | ✓ S | ✓ |
//! | [`WebstreamWrite`](Action::WebstreamWrite) (create, change, delete; probe its health) | ✓ | ✓ S | — | ✓ if manager |
//!
//! DJs bring their own music and fix its titles and cue points, so they upload, edit and tag
//! at their station; deleting media (which unplans it from the schedule) and curating the
//! station's tag vocabulary (which smart blocks select by) are for managers.
//!
//! Anonymous requests are refused before the policy is asked (401); a refusal by the policy is
//! 403. A manager may give roles at S up to manager; there is no role above it at a station.

use std::collections::BTreeMap;

use crate::db::api_keys::ApiKeyId;
use crate::db::members::StationRole;
use crate::db::refresh_tokens::FamilyId;
use crate::db::stations::StationId;
use crate::db::users::{AccountRole, UserId};

/// Something a principal asks to do. The table in the [module docs](self) says who may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// List stations (filtered to those the principal may read).
    StationList,
    /// Read a station.
    StationRead,
    /// Change a station's settings.
    StationUpdate,
    /// Create a station.
    StationCreate,
    /// Delete a station.
    StationDelete,
    /// List a station's members.
    MemberRead,
    /// Give or take a role at a station.
    MemberWrite,
    /// List a station's API keys.
    ApiKeyRead,
    /// Create or revoke a station's API keys.
    ApiKeyWrite,
    /// Read the audit log (of one station, or of all for admins).
    AuditRead,
    /// Watch a station's events (WebSocket or SSE).
    EventRead,
    /// Manage user accounts.
    UserAdmin,
    /// Read one's own account.
    SelfRead,
    /// Change one's own password.
    PasswordChange,
    /// Read a station's DSP graphs.
    DspGraphRead,
    /// Create, change, delete or apply a station's DSP graphs.
    DspGraphWrite,
    /// Read a station's smart blocks, clocks, shows and grid, and preview what they would plan.
    ProgrammeRead,
    /// Create, change or delete a station's smart blocks, clocks, shows and grid.
    ProgrammeWrite,
    /// Read a station's schedule.
    ScheduleRead,
    /// Re-plan a station's schedule or edit its entries.
    ScheduleWrite,
    /// List a station's priority sources.
    PriorityRead,
    /// Create or remove a station's priority sources at tiers 1–2 (an override).
    PriorityWrite,
    /// Put an emergency (tier 0) on a station's air.
    PriorityEmergency,
    /// Read a station's executor state.
    ExecutorStateRead,
    /// Skip, stop or reload a station's playout.
    PlayoutControl,
    /// Read what is on air and the play counts of a station.
    AnalyticsRead,
    /// Get a live source credential, hand a live source over to the air and take it off.
    LiveSession,
    /// Report a track start from an external playout.
    TrackReport,
    /// List, read and download a station's media; list its tags.
    MediaRead,
    /// Upload media to a station, change its metadata and cue points, tag and untag it.
    MediaWrite,
    /// Delete a station's media.
    MediaDelete,
    /// Create or delete a station's tags.
    TagWrite,
    /// Record, follow and cancel import jobs from other systems (they read files on the
    /// server and create stations and users).
    MigrationAdmin,
    /// Read the encoder presets (they belong to no station).
    EncoderPresetRead,
    /// Create, change or delete encoder presets.
    EncoderPresetWrite,
    /// Read a station's mounts.
    MountRead,
    /// Create, change or delete a station's mounts.
    MountWrite,
    /// Read a station's webstreams.
    WebstreamRead,
    /// Create, change or delete a station's webstreams, and probe their health: the server
    /// then makes HTTP requests to the URLs given, so only managers may.
    WebstreamWrite,
}

/// Who may do an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Any authenticated principal.
    Anyone,
    /// Admins only.
    Admin,
    /// Admins, and who has at least this role at the station concerned.
    AtStation(StationRole),
}

/// The rule of an action: who, and whether API keys may.
const fn rule(action: Action) -> (Who, bool) {
    use Action::*;
    match action {
        StationList => (Who::Anyone, true),
        StationRead | EventRead => (Who::AtStation(StationRole::Dj), true),
        StationUpdate => (Who::AtStation(StationRole::Manager), true),
        StationCreate | StationDelete => (Who::Admin, false),
        MemberRead => (Who::AtStation(StationRole::Manager), true),
        MemberWrite | ApiKeyRead | ApiKeyWrite | AuditRead => {
            (Who::AtStation(StationRole::Manager), false)
        }
        UserAdmin => (Who::Admin, false),
        SelfRead => (Who::Anyone, true),
        PasswordChange => (Who::Anyone, false),
        DspGraphRead => (Who::AtStation(StationRole::Dj), true),
        DspGraphWrite => (Who::AtStation(StationRole::Manager), true),
        ProgrammeRead | ScheduleRead => (Who::AtStation(StationRole::Dj), true),
        ProgrammeWrite | ScheduleWrite => (Who::AtStation(StationRole::Manager), true),
        PriorityRead | ExecutorStateRead | PlayoutControl | AnalyticsRead | TrackReport => {
            (Who::AtStation(StationRole::Dj), true)
        }
        PriorityWrite | PriorityEmergency => (Who::AtStation(StationRole::Manager), true),
        LiveSession => (Who::AtStation(StationRole::Dj), false),
        MediaRead | MediaWrite => (Who::AtStation(StationRole::Dj), true),
        MediaDelete | TagWrite => (Who::AtStation(StationRole::Manager), true),
        MigrationAdmin => (Who::Admin, false),
        EncoderPresetRead => (Who::Anyone, true),
        EncoderPresetWrite => (Who::Admin, false),
        MountRead | WebstreamRead => (Who::AtStation(StationRole::Dj), true),
        MountWrite | WebstreamWrite => (Who::AtStation(StationRole::Manager), true),
    }
}

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// An access token of a session (a refresh-token family).
    Session(FamilyId),
    /// An API key.
    ApiKey(ApiKeyId),
}

/// Whoever made a request, with what it may do where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user (for an API key, the user who created it).
    pub user_id: UserId,
    /// The user's email.
    pub email: String,
    /// How it signed in.
    pub credential: Credential,
    admin: bool,
    stations: BTreeMap<StationId, StationRole>,
}

impl Principal {
    /// A user signed in with an access token of `session`, with the user's account role and
    /// roles at stations.
    pub fn user(
        user_id: UserId,
        email: String,
        role: AccountRole,
        session: FamilyId,
        stations: impl IntoIterator<Item = (StationId, StationRole)>,
    ) -> Self {
        Principal {
            user_id,
            email,
            credential: Credential::Session(session),
            admin: role == AccountRole::Admin,
            stations: stations.into_iter().collect(),
        }
    }

    /// An API key of `station` with `role`, acting for a user with `user_role` and
    /// `user_stations`. The key gets the lower of its role and what the user may do at the
    /// station now (an admin user counts as manager); nothing if the user lost the station.
    pub fn api_key(
        key: ApiKeyId,
        station: StationId,
        role: StationRole,
        user_id: UserId,
        email: String,
        user_role: AccountRole,
        user_stations: impl IntoIterator<Item = (StationId, StationRole)>,
    ) -> Self {
        let user_has = if user_role == AccountRole::Admin {
            Some(StationRole::Manager)
        } else {
            user_stations
                .into_iter()
                .find(|(s, _)| *s == station)
                .map(|(_, r)| r)
        };
        let stations = user_has
            .map(|has| (station, role.min(has)))
            .into_iter()
            .collect();
        Principal {
            user_id,
            email,
            credential: Credential::ApiKey(key),
            admin: false,
            stations,
        }
    }

    /// Whether this is an admin (never true for an API key).
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether this is an API key.
    pub fn is_api_key(&self) -> bool {
        matches!(self.credential, Credential::ApiKey(_))
    }

    /// The principal's role at a station, if it has one there (admins have none of their own:
    /// they need none).
    pub fn role_at(&self, station: StationId) -> Option<StationRole> {
        self.stations.get(&station).copied()
    }

    /// The stations the principal has a role at.
    pub fn stations(&self) -> impl Iterator<Item = (StationId, StationRole)> + '_ {
        self.stations.iter().map(|(s, r)| (*s, *r))
    }
}

/// Whether `principal` may do `action`, at `station` when the action concerns one.
///
/// Station actions asked without a station (`None`) are for admins only: that is how "all
/// stations" is asked for, e.g. the whole audit log.
pub fn allows(principal: &Principal, action: Action, station: Option<StationId>) -> bool {
    let (who, keys) = rule(action);
    if principal.is_api_key() && !keys {
        return false;
    }
    match who {
        Who::Anyone => true,
        Who::Admin => principal.is_admin(),
        Who::AtStation(needed) => {
            principal.is_admin()
                || station
                    .and_then(|s| principal.role_at(s))
                    .is_some_and(|has| has >= needed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        a: StationId,
        b: StationId,
    }

    fn user(role: AccountRole, stations: &[(StationId, StationRole)]) -> Principal {
        Principal::user(
            UserId::random(),
            "x@example.org".into(),
            role,
            FamilyId::random(),
            stations.iter().copied(),
        )
    }

    /// The module's table, row by row: (action, admin, manager A, dj A, key A as manager, key A
    /// as dj), each at station A; then the same principals at station B are refused everything
    /// station-scoped unless admin.
    #[test]
    fn the_documented_table_holds() {
        use Action::*;
        let w = World {
            a: StationId::random(),
            b: StationId::random(),
        };
        let admin = user(AccountRole::Admin, &[]);
        let manager = user(AccountRole::User, &[(w.a, StationRole::Manager)]);
        let dj = user(AccountRole::User, &[(w.a, StationRole::Dj)]);
        let key = |role| {
            Principal::api_key(
                ApiKeyId::random(),
                w.a,
                role,
                UserId::random(),
                "k@example.org".into(),
                AccountRole::User,
                [(w.a, StationRole::Manager)],
            )
        };
        let (key_manager, key_dj) = (key(StationRole::Manager), key(StationRole::Dj));
        #[rustfmt::skip]
        let table = [
            //                 admin  mgr    dj     key-m  key-dj
            (StationList,     [true,  true,  true,  true,  true ]),
            (StationRead,     [true,  true,  true,  true,  true ]),
            (StationUpdate,   [true,  true,  false, true,  false]),
            (StationCreate,   [true,  false, false, false, false]),
            (StationDelete,   [true,  false, false, false, false]),
            (MemberRead,      [true,  true,  false, true,  false]),
            (MemberWrite,     [true,  true,  false, false, false]),
            (ApiKeyRead,      [true,  true,  false, false, false]),
            (ApiKeyWrite,     [true,  true,  false, false, false]),
            (AuditRead,       [true,  true,  false, false, false]),
            (EventRead,       [true,  true,  true,  true,  true ]),
            (UserAdmin,       [true,  false, false, false, false]),
            (SelfRead,        [true,  true,  true,  true,  true ]),
            (PasswordChange,  [true,  true,  true,  false, false]),
            (DspGraphRead,    [true,  true,  true,  true,  true ]),
            (DspGraphWrite,   [true,  true,  false, true,  false]),
            (ProgrammeRead,   [true,  true,  true,  true,  true ]),
            (ProgrammeWrite,  [true,  true,  false, true,  false]),
            (ScheduleRead,    [true,  true,  true,  true,  true ]),
            (ScheduleWrite,   [true,  true,  false, true,  false]),
            (MediaRead,       [true,  true,  true,  true,  true ]),
            (MediaWrite,      [true,  true,  true,  true,  true ]),
            (MediaDelete,     [true,  true,  false, true,  false]),
            (TagWrite,        [true,  true,  false, true,  false]),
            (MigrationAdmin,  [true,  false, false, false, false]),
            (EncoderPresetRead,  [true, true, true,  true,  true ]),
            (EncoderPresetWrite, [true, false, false, false, false]),
            (MountRead,       [true,  true,  true,  true,  true ]),
            (MountWrite,      [true,  true,  false, true,  false]),
            (WebstreamRead,   [true,  true,  true,  true,  true ]),
            (WebstreamWrite,  [true,  true,  false, true,  false]),
        ];
        let principals = [&admin, &manager, &dj, &key_manager, &key_dj];
        for (action, expected) in table {
            for (principal, allowed) in principals.iter().zip(expected) {
                assert_eq!(
                    allows(principal, action, Some(w.a)),
                    allowed,
                    "{action:?} at A by {principal:?}"
                );
                // At B, where none of them has a role, only admins and station-less actions.
                let (who, _) = rule(action);
                let at_b = allowed && (principal.is_admin() || who == Who::Anyone);
                assert_eq!(
                    allows(principal, action, Some(w.b)),
                    at_b,
                    "{action:?} at B by {principal:?}"
                );
            }
        }
        // "All stations" is for admins.
        assert!(allows(&admin, AuditRead, None));
        assert!(!allows(&manager, AuditRead, None));
    }

    #[test]
    fn a_key_never_does_more_than_its_user() {
        let station = StationId::random();
        let demoted = Principal::api_key(
            ApiKeyId::random(),
            station,
            StationRole::Manager,
            UserId::random(),
            "k@example.org".into(),
            AccountRole::User,
            [(station, StationRole::Dj)],
        );
        assert_eq!(demoted.role_at(station), Some(StationRole::Dj));
        assert!(!allows(&demoted, Action::StationUpdate, Some(station)));
        let gone = Principal::api_key(
            ApiKeyId::random(),
            station,
            StationRole::Dj,
            UserId::random(),
            "k@example.org".into(),
            AccountRole::User,
            [],
        );
        assert!(!allows(&gone, Action::StationRead, Some(station)));
        let of_admin = Principal::api_key(
            ApiKeyId::random(),
            station,
            StationRole::Manager,
            UserId::random(),
            "k@example.org".into(),
            AccountRole::Admin,
            [],
        );
        assert!(!of_admin.is_admin());
        assert!(allows(&of_admin, Action::StationUpdate, Some(station)));
        assert!(!allows(&of_admin, Action::StationDelete, Some(station)));
    }
}
