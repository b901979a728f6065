//! Which events a subscriber receives: by station and by type, parsed from a query string and
//! narrowed to what the caller may see.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::model::{Envelope, EventType};

/// What the caller may see, put in the request's extensions by the authentication middleware.
///
/// The event stream handlers answer `401` when it is absent, so nothing is streamed to a
/// request that no authentication layer has looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Every station's events (an administrator).
    All,
    /// Only these stations' events (a manager or DJ of these stations).
    Stations(Vec<Uuid>),
}

impl EventScope {
    /// Whether the scope includes `station`.
    pub fn allows(&self, station: Uuid) -> bool {
        match self {
            EventScope::All => true,
            EventScope::Stations(stations) => stations.contains(&station),
        }
    }
}

/// A selection of events: `None` means every station, or every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    stations: Option<BTreeSet<Uuid>>,
    types: Option<BTreeSet<EventType>>,
}

/// Why a filter could not be built; each names the query parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A query parameter this endpoint does not know.
    #[error("unknown query parameter {name:?}; expected `station` or `types`")]
    UnknownParameter {
        /// The parameter's name.
        name: String,
    },
    /// A `station` value that is not a UUID.
    #[error("{value:?} is not a station id (a UUID)")]
    BadStation {
        /// The value given.
        value: String,
    },
    /// A `types` value that is not an event type.
    #[error("{0}")]
    BadType(#[from] super::model::UnknownEventType),
    /// An empty value, as in `types=` or `station=a,,b`.
    #[error("empty value in `{field}`")]
    Empty {
        /// `station` or `types`.
        field: &'static str,
    },
    /// The query string is not valid URL encoding.
    #[error("the query string is not valid URL encoding: {0}")]
    Malformed(String),
    /// A requested station is outside the caller's scope.
    #[error("no access to the events of station {station}")]
    Forbidden {
        /// The station.
        station: Uuid,
    },
}

impl FilterError {
    /// The query parameter at fault, for the `field` of an error body.
    pub fn field(&self) -> Option<&str> {
        match self {
            FilterError::UnknownParameter { name } => Some(name),
            FilterError::BadStation { .. } | FilterError::Forbidden { .. } => Some("station"),
            FilterError::BadType(_) => Some("types"),
            FilterError::Empty { field } => Some(field),
            FilterError::Malformed(_) => None,
        }
    }
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        EventFilter::default()
    }

    /// Only these stations (every type unless narrowed with [`EventFilter::with_types`]).
    pub fn stations(stations: impl IntoIterator<Item = Uuid>) -> Self {
        EventFilter {
            stations: Some(stations.into_iter().collect()),
            types: None,
        }
    }

    /// Narrows to these types.
    pub fn with_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.types = Some(types.into_iter().collect());
        self
    }

    /// Parses `station=<uuid>` (repeatable, or a comma list) and `types=<type>,<type>`
    /// (repeatable too) from a query string without the `?`. No parameter means no narrowing.
    pub fn from_query(query: &str) -> Result<Self, FilterError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| FilterError::Malformed(e.to_string()))?;
        let mut filter = EventFilter::default();
        for (name, value) in pairs {
            match name.as_str() {
                "station" => {
                    let stations = filter.stations.get_or_insert_with(BTreeSet::new);
                    for part in split_list(&value, "station")? {
                        let id = Uuid::parse_str(part).map_err(|_| FilterError::BadStation {
                            value: part.to_owned(),
                        })?;
                        stations.insert(id);
                    }
                }
                "types" => {
                    let types = filter.types.get_or_insert_with(BTreeSet::new);
                    for part in split_list(&value, "types")? {
                        types.insert(part.parse()?);
                    }
                }
                _ => return Err(FilterError::UnknownParameter { name }),
            }
        }
        Ok(filter)
    }

    /// This filter within `scope`: a caller limited to some stations gets those when it asked
    /// for none, and an error naming the first station it asked for but may not see.
    pub fn within(mut self, scope: &EventScope) -> Result<Self, FilterError> {
        let EventScope::Stations(allowed) = scope else {
            return Ok(self);
        };
        match &self.stations {
            None => self.stations = Some(allowed.iter().copied().collect()),
            Some(requested) => {
                if let Some(station) = requested.iter().find(|s| !allowed.contains(s)) {
                    return Err(FilterError::Forbidden { station: *station });
                }
            }
        }
        Ok(self)
    }

    /// Whether the event passes.
    pub fn matches(&self, envelope: &Envelope) -> bool {
        self.stations
            .as_ref()
            .is_none_or(|s| s.contains(&envelope.station_id))
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(&envelope.event_type()))
    }

    /// The types that pass: every type when not narrowed.
    pub fn types(&self) -> Vec<EventType> {
        match &self.types {
            Some(types) => types.iter().copied().collect(),
            None => EventType::ALL.to_vec(),
        }
    }
}

/// The parts of a comma list, refusing empty ones.
fn split_list<'a>(value: &'a str, field: &'static str) -> Result<Vec<&'a str>, FilterError> {
    value
        .split(',')
        .map(str::trim)
        .map(|part| {
            if part.is_empty() {
                Err(FilterError::Empty { field })
            } else {
                Ok(part)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::events::model::{BufferHealth, Event, SilenceDetected};

    const A: &str = "6f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f";
    const B: &str = "0e7d5b2a-1111-4222-8333-444455556666";
    const C: &str = "a3bb189e-8bf9-3888-9912-ace4e6543002";

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    fn buffer(station: &str) -> Envelope {
        Envelope::new(
            id(station),
            Uuid::nil(),
            Event::BufferHealth(BufferHealth {
                depth_samples: 1,
                sample_rate: 48_000,
                dropouts: 0,
            }),
        )
    }

    fn silence(station: &str) -> Envelope {
        Envelope::new(
            id(station),
            Uuid::nil(),
            Event::SilenceDetected(SilenceDetected {
                duration_ms: 1,
                threshold_dbfs: -60.0,
            }),
        )
    }

    #[test]
    fn no_parameters_pass_everything() {
        let filter = EventFilter::from_query("").unwrap();
        assert_eq!(filter, EventFilter::all());
        assert!(filter.matches(&buffer(A)) && filter.matches(&silence(B)));
        assert_eq!(filter.types(), EventType::ALL.to_vec());
    }

    #[test]
    fn stations_repeat_or_come_as_lists_and_types_narrow() {
        let filter = EventFilter::from_query(&format!(
            "station={A}&station={B}%2C%20{C}&types=silence_detected"
        ))
        .unwrap();
        assert_eq!(
            filter,
            EventFilter::stations([id(A), id(B), id(C)]).with_types([EventType::SilenceDetected])
        );
        assert!(filter.matches(&silence(C)));
        assert!(!filter.matches(&buffer(C)));
        let only_a = EventFilter::from_query(&format!("station={A}")).unwrap();
        assert!(only_a.matches(&buffer(A)) && only_a.matches(&silence(A)));
        assert!(!only_a.matches(&buffer(B)));
        let two_types =
            EventFilter::from_query("types=buffer_health,silence_detected&types=now_playing")
                .unwrap();
        assert_eq!(two_types.types().len(), 3);
        assert!(two_types.matches(&buffer(B)));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("types=now_playing,weather", Some("types")),
            ("types=", Some("types")),
            ("station=42", Some("station")),
            (&format!("station={A},,{B}") as &str, Some("station")),
            ("stations=x", Some("stations")),
            // Bad percent-encoding is kept as written, and then is no UUID.
            ("station=%zz", Some("station")),
        ];
        for (query, field) in cases {
            let err = EventFilter::from_query(query).unwrap_err();
            assert_eq!(err.field(), field, "{query}: {err}");
        }
        assert_eq!(
            EventFilter::from_query("types=Weather")
                .unwrap_err()
                .to_string(),
            "unknown event type \"Weather\"; expected one of now_playing, source_failure, \
             buffer_health, loudness_metrics, silence_detected, output_health, priority_change, \
             media_changed"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_query_parses_or_names_a_field(query in ".*") {
            // Never panics; a refusal other than malformed encoding names its parameter.
            if let Err(e) = EventFilter::from_query(&query) {
                proptest::prop_assert!(
                    e.field().is_some() || matches!(e, FilterError::Malformed(_))
                );
            }
        }

        #[test]
        fn listed_stations_and_types_are_exactly_what_passes(
            stations in proptest::collection::vec(proptest::num::u128::ANY, 1..5),
            types in proptest::sample::subsequence(EventType::ALL.to_vec(), 1..8),
            probe in proptest::num::u128::ANY,
        ) {
            let query = format!(
                "station={}&types={}",
                stations.iter().map(|s| Uuid::from_u128(*s).to_string()).collect::<Vec<_>>().join(","),
                types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            );
            let filter = EventFilter::from_query(&query).unwrap();
            for station in stations.iter().copied().chain([probe]) {
                let envelope = buffer(&Uuid::from_u128(station).to_string());
                proptest::prop_assert_eq!(
                    filter.matches(&envelope),
                    stations.contains(&station) && types.contains(&EventType::BufferHealth)
                );
            }
        }
    }

    #[test]
    fn a_scope_narrows_and_refuses_what_it_does_not_cover() {
        let scope = EventScope::Stations(vec![id(A), id(B)]);
        let narrowed = EventFilter::all().within(&scope).unwrap();
        assert!(narrowed.matches(&buffer(A)) && narrowed.matches(&buffer(B)));
        assert!(!narrowed.matches(&buffer(C)));
        let asked = EventFilter::stations([id(B)]).within(&scope).unwrap();
        assert!(!asked.matches(&buffer(A)));
        let err = EventFilter::stations([id(A), id(C)])
            .within(&scope)
            .unwrap_err();
        assert_eq!(err, FilterError::Forbidden { station: id(C) });
        assert_eq!(err.field(), Some("station"));
        let everything = EventFilter::stations([id(C)])
            .within(&EventScope::All)
            .unwrap();
        assert!(everything.matches(&buffer(C)));
        let nothing = EventFilter::all()
            .within(&EventScope::Stations(vec![]))
            .unwrap();
        assert!(!nothing.matches(&buffer(A)));
        assert!(scope.allows(id(A)) && !scope.allows(id(C)));
    }
}
