//! DSP graphs: a station's saved processing chains, and which one its engine runs.
//!
//! A graph is stored as the JSON of [`grimnir_dsp::DspGraph::nodes`], the same document a
//! station file holds under `dsp_graph:`, and is validated by grimnir-dsp before it is stored.
//! At most one graph per station is *applied* (its `applied_at` is set): the one the station's
//! engine is to run. [`apply`] moves that mark in one transaction.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use grimnir_dsp::{DspError, DspGraph};

use super::programme::check_name;
use super::schema::dsp_graphs;
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a DSP graph.
    DspGraphId
}

/// Longest graph name, in characters (the column is `VARCHAR(255)`).
pub const MAX_NAME_CHARS: usize = 255;

/// A DSP graph as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DspGraphRecord {
    /// Its id.
    pub id: DspGraphId,
    /// The station it belongs to.
    pub station_id: StationId,
    /// Name shown to people.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The processing chain.
    pub graph: DspGraph,
    /// When it was applied to the station's engine, if it is the applied one.
    pub applied_at: Option<DateTime<Utc>>,
    /// When it was created (UTC, microsecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC, microsecond precision).
    pub updated_at: DateTime<Utc>,
}

/// What a new graph is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDspGraph {
    /// Name shown to people: 1 to [`MAX_NAME_CHARS`] characters, no control characters;
    /// surrounding whitespace is removed.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The processing chain; it must pass [`DspGraph::validate`].
    pub graph: DspGraph,
}

/// Changes to a graph; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DspGraphChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new description; `Some(None)` removes it.
    pub description: Option<Option<String>>,
    /// A new chain, replacing the whole node list.
    pub graph: Option<DspGraph>,
}

/// Why a graph cannot be stored: the storage failed, or the chain is refused by grimnir-dsp
/// (the error names the node and parameter).
#[derive(Debug, thiserror::Error)]
pub enum DspGraphError {
    /// The storage failed or refused a field.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The chain holds an impossible value.
    #[error(transparent)]
    Graph(#[from] DspError),
}

impl From<diesel::result::Error> for DspGraphError {
    fn from(e: diesel::result::Error) -> Self {
        DspGraphError::Storage(e.into())
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = dsp_graphs)]
struct DspGraphRow {
    id: String,
    station_id: String,
    name: String,
    description: Option<String>,
    nodes: String,
    applied_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<DspGraphRow> for DspGraphRecord {
    type Error = StorageError;

    fn try_from(row: DspGraphRow) -> Result<Self, StorageError> {
        let nodes = serde_json::from_str(&row.nodes).map_err(|_| StorageError::Corrupt {
            table: "dsp_graphs",
            column: "nodes",
            value: row.nodes.clone(),
            expected: "a JSON list of DSP nodes",
        })?;
        Ok(DspGraphRecord {
            id: stored_id("dsp_graphs", "id", &row.id)?,
            station_id: stored_id("dsp_graphs", "station_id", &row.station_id)?,
            name: row.name,
            description: row.description,
            graph: DspGraph { nodes },
            applied_at: row.applied_at.map(|t| t.and_utc()),
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// The node list as stored, after validation.
fn nodes_json(graph: &DspGraph) -> Result<String, DspGraphError> {
    graph.validate()?;
    serde_json::to_string(&graph.nodes)
        .map_err(|e| StorageError::Task(format!("DSP graph as JSON: {e}")).into())
}

fn load(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
) -> Result<DspGraphRecord, StorageError> {
    dsp_graphs::table
        .filter(dsp_graphs::id.eq(id.to_string()))
        .filter(dsp_graphs::station_id.eq(station.to_string()))
        .select(DspGraphRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "DSP graph",
            id: id.to_string(),
        })?
        .try_into()
}

/// Stores a new graph of `station` (not applied) and returns it as stored.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    new: &NewDspGraph,
) -> Result<DspGraphRecord, DspGraphError> {
    let name = check_name(&new.name)?;
    let nodes = nodes_json(&new.graph)?;
    let id = DspGraphId::random();
    let at = now();
    diesel::insert_into(dsp_graphs::table)
        .values((
            dsp_graphs::id.eq(id.to_string()),
            dsp_graphs::station_id.eq(station.to_string()),
            dsp_graphs::name.eq(name),
            dsp_graphs::description.eq(new.description.as_deref()),
            dsp_graphs::nodes.eq(&nodes),
            dsp_graphs::created_at.eq(at),
            dsp_graphs::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(load(conn, station, id)?)
}

/// The graph `id` of `station`.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
) -> Result<DspGraphRecord, StorageError> {
    load(conn, station, id)
}

/// The graph applied to `station`, if one is.
pub fn applied(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<Option<DspGraphRecord>, StorageError> {
    dsp_graphs::table
        .filter(dsp_graphs::station_id.eq(station.to_string()))
        .filter(dsp_graphs::applied_at.is_not_null())
        .order(dsp_graphs::applied_at.desc())
        .select(DspGraphRow::as_select())
        .first(conn)
        .optional()?
        .map(DspGraphRecord::try_from)
        .transpose()
}

/// One page of `station`'s graphs by name, then id, and how many it has in all.
pub fn list_page(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<DspGraphRecord>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = dsp_graphs::table
        .filter(dsp_graphs::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = dsp_graphs::table
        .filter(dsp_graphs::station_id.eq(&station))
        .order((dsp_graphs::name, dsp_graphs::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(DspGraphRow::as_select())
        .load(conn)?
        .into_iter()
        .map(DspGraphRecord::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Applies `changes` and returns the graph as stored afterwards. Changing the applied graph's
/// chain does not touch `applied_at`: the caller decides whether the engine is told.
pub fn update(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
    changes: &DspGraphChanges,
) -> Result<DspGraphRecord, DspGraphError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let nodes = changes.graph.as_ref().map(nodes_json).transpose()?;
    // The write comes first: an SQLite transaction that starts with a read cannot wait for a
    // concurrent writer. A missing graph is found by reading back.
    diesel::update(
        dsp_graphs::table
            .filter(dsp_graphs::id.eq(id.to_string()))
            .filter(dsp_graphs::station_id.eq(station.to_string())),
    )
    .set((
        name.map(|n| dsp_graphs::name.eq(n)),
        changes
            .description
            .as_ref()
            .map(|d| dsp_graphs::description.eq(d.as_deref())),
        nodes.map(|n| dsp_graphs::nodes.eq(n)),
        dsp_graphs::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(load(conn, station, id)?)
}

/// Deletes the graph. Deleting the applied graph leaves the station with none applied; its
/// engine keeps the chain it runs until it is given another.
pub fn delete(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
) -> Result<(), StorageError> {
    let deleted = diesel::delete(
        dsp_graphs::table
            .filter(dsp_graphs::id.eq(id.to_string()))
            .filter(dsp_graphs::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "DSP graph",
            id: id.to_string(),
        });
    }
    Ok(())
}

/// Makes `id` the graph applied to `station` (and no other), and returns it as stored.
pub fn apply(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
) -> Result<DspGraphRecord, StorageError> {
    mark_applied(conn, station, &id.to_string(), now())?;
    load(conn, station, id)
}

/// Sets `applied_at` on graph `id` of `station` and clears it on the station's others. Call it
/// inside a transaction.
pub(crate) fn mark_applied(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    let station = station.to_string();
    let marked = diesel::update(
        dsp_graphs::table
            .filter(dsp_graphs::id.eq(id))
            .filter(dsp_graphs::station_id.eq(&station)),
    )
    .set(dsp_graphs::applied_at.eq(Some(at)))
    .execute(conn)?;
    // MySQL counts changed rows, not matched ones; an unchanged row is read back instead.
    if marked == 0
        && !diesel::select(diesel::dsl::exists(
            dsp_graphs::table
                .filter(dsp_graphs::id.eq(id))
                .filter(dsp_graphs::station_id.eq(&station)),
        ))
        .get_result::<bool>(conn)?
    {
        return Err(StorageError::NotFound {
            entity: "DSP graph",
            id: id.to_owned(),
        });
    }
    diesel::update(
        dsp_graphs::table
            .filter(dsp_graphs::station_id.eq(&station))
            .filter(dsp_graphs::id.ne(id)),
    )
    .set(dsp_graphs::applied_at.eq(None::<NaiveDateTime>))
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(" broadcast chain ").unwrap(), "broadcast chain");
        assert!(check_name("").is_err());
        assert!(check_name("a\tb").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn impossible_chains_are_refused_before_storage() {
        let graph: DspGraph =
            serde_json::from_str(r#"{"nodes":[{"type":"compressor","config":{"ratio":0.5}}]}"#)
                .unwrap();
        let err = nodes_json(&graph).unwrap_err();
        assert!(
            matches!(
                err,
                DspGraphError::Graph(DspError::InvalidParameter {
                    node: 0,
                    field: "ratio",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
