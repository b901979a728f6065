//! Storage on every backend: migrations, the schema the code expects, foreign keys, and the
//! stations round trip.
//!
//! SQLite always runs (a file in a temporary directory). PostgreSQL and MariaDB run against the
//! local servers in a database created for the run and dropped after it; when a server is
//! unreachable the test fails with `CI=true` and is skipped with a printed reason otherwise.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;

use chrono::Utc;
use diesel::prelude::*;
use grimnir_server::db::schema::{self, mounts, stations as stations_table};
use grimnir_server::db::stations::{self, NewStation, StationChanges, StationId};
use grimnir_server::db::{
    Backend, Database, DatabaseUrl, DbConnection, PoolOptions, Readiness, StorageError,
};

/// Selects every column the diesel schema names from every table, so a column missing or
/// misnamed in one backend's migration fails here.
fn check_every_table(conn: &mut DbConnection) -> Result<(), StorageError> {
    macro_rules! check {
        ($($table:ident),* $(,)?) => {$(
            schema::$table::table
                .select(schema::$table::all_columns)
                .limit(0)
                .execute(conn)
                .map_err(|e| {
                    StorageError::Invalid {
                        field: stringify!($table),
                        value: String::new(),
                        reason: e.to_string(),
                    }
                })?;
        )*};
    }
    check!(
        users,
        stations,
        station_users,
        encoder_presets,
        mounts,
        media_items,
        tags,
        media_tag_links,
        smart_blocks,
        clock_hours,
        clock_slots,
        shows,
        schedule_entries,
        play_history,
        analysis_jobs,
        executor_states,
        priority_sources,
        webstreams,
        dsp_graphs,
        migration_jobs,
        refresh_tokens,
        spent_tickets,
        api_keys,
        audit_log,
        station_programmes,
    );
    Ok(())
}

fn insert_mount(conn: &mut DbConnection, station: &str) -> QueryResult<usize> {
    let now = Utc::now().naive_utc();
    diesel::insert_into(mounts::table)
        .values((
            mounts::id.eq(uuid::Uuid::new_v4().to_string()),
            mounts::station_id.eq(station),
            mounts::name.eq("Main 128k"),
            mounts::outputs.eq("[]"),
            mounts::created_at.eq(now),
            mounts::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Everything the storage layer promises, on one database.
async fn exercise(url: DatabaseUrl) {
    let backend = url.backend();
    let db = Database::open(url, PoolOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{backend}: open: {e}"));
    assert_eq!(db.backend(), backend);

    // A fresh database: everything pending, not ready.
    let pending = db.pending_migrations().await.unwrap();
    assert!(!pending.is_empty());
    match db.readiness().await {
        Readiness::NotReady(reason) => assert!(reason.contains("not applied"), "{reason}"),
        other => panic!("{backend}: ready before migrating: {other:?}"),
    }

    let applied = db.migrate().await.unwrap();
    assert_eq!(applied, pending, "{backend}");
    assert!(
        db.migrate().await.unwrap().is_empty(),
        "{backend}: second run applied again"
    );
    assert_eq!(db.readiness().await, Readiness::Ready, "{backend}");
    db.run(check_every_table)
        .await
        .unwrap_or_else(|e| panic!("{backend}: schema: {e}"));

    // Create.
    let mut wgmr = NewStation::new("WGMR FM", "America/New_York");
    wgmr.description = Some("Community radio".into());
    let created = db.run(move |c| stations::create(c, &wgmr)).await.unwrap();
    assert_eq!(created.name, "WGMR FM");
    assert_eq!(created.timezone, chrono_tz::America::New_York);
    assert_eq!(created.description.as_deref(), Some("Community radio"));
    assert!(created.active);
    assert_eq!(created.created_at, created.updated_at);
    // Non-ASCII survives (utf8mb4 on MySQL).
    let aero = db
        .run(|c| stations::create(c, &NewStation::new("  Radio Ærø 📻 ", "Europe/Copenhagen")))
        .await
        .unwrap();
    assert_eq!(aero.name, "Radio Ærø 📻");

    // Read.
    let id = created.id;
    let fetched = db.run(move |c| stations::get(c, id)).await.unwrap();
    assert_eq!(
        fetched, created,
        "{backend}: what was stored is what is read"
    );
    let listed = db.run(stations::list).await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Radio Ærø 📻", "WGMR FM"], "{backend}: by name");

    // Update.
    let changes = StationChanges {
        name: Some("WGMR 101.5".into()),
        description: Some(None),
        active: Some(false),
        ..StationChanges::default()
    };
    let updated = db
        .run(move |c| stations::update(c, id, &changes))
        .await
        .unwrap();
    assert_eq!(updated.name, "WGMR 101.5");
    assert_eq!(updated.description, None);
    assert!(!updated.active);
    assert_eq!(updated.timezone, created.timezone);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(
        db.run(move |c| stations::get(c, id)).await.unwrap(),
        updated
    );

    // Refused input changes nothing.
    let bad_zone = StationChanges {
        timezone: Some("Mars/Olympus".into()),
        ..StationChanges::default()
    };
    let err = db
        .run(move |c| stations::update(c, id, &bad_zone))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Invalid {
                field: "timezone",
                ..
            }
        ),
        "{err}"
    );
    let err = db
        .run(|c| stations::create(c, &NewStation::new("", "UTC")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Invalid { field: "name", .. }),
        "{err}"
    );

    // Foreign keys hold: a mount for no station is refused; deleting a station deletes its
    // mounts.
    let err = db
        .run(|c| insert_mount(c, &StationId::random().to_string()).map_err(StorageError::from))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        ),
        "{backend}: {err}"
    );
    let station = id.to_string();
    db.run(move |c| insert_mount(c, &station).map_err(StorageError::from))
        .await
        .unwrap();
    assert_eq!(count_mounts(&db).await, 1);

    // Delete.
    db.run(move |c| stations::delete(c, id)).await.unwrap();
    assert_eq!(count_mounts(&db).await, 0, "{backend}: cascade");
    for err in [
        db.run(move |c| stations::get(c, id).map(drop))
            .await
            .unwrap_err(),
        db.run(move |c| stations::delete(c, id)).await.unwrap_err(),
        db.run(move |c| stations::update(c, id, &StationChanges::default()).map(drop))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                StorageError::NotFound {
                    entity: "station",
                    ..
                }
            ),
            "{err}"
        );
    }
    let left: Vec<_> = db
        .run(stations::list)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [aero.id]);
    let total: i64 = db
        .run(|c| Ok(stations_table::table.count().get_result(c)?))
        .await
        .unwrap();
    assert_eq!(total, 1);
}

async fn count_mounts(db: &Database) -> i64 {
    db.run(|c| Ok(mounts::table.count().get_result::<i64>(c)?))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrations_and_stations() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: opening creates it.
    let path = dir.path().join("data").join("grimnir.db");
    exercise(DatabaseUrl::sqlite_file(&path)).await;
    assert!(path.is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_keeps_one_database() {
    let url: DatabaseUrl = "sqlite::memory:".parse().unwrap();
    let db = Database::open(url, PoolOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    // Another checkout sees the migrated schema: the pool holds a single connection.
    assert_eq!(db.readiness().await, Readiness::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_and_stations() {
    let Some(test_db) = common::postgres() else {
        return;
    };
    assert_eq!(test_db.url.backend(), Backend::Postgres);
    exercise(test_db.url.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_migrations_and_stations() {
    let Some(test_db) = common::mysql() else {
        return;
    };
    assert_eq!(test_db.url.backend(), Backend::Mysql);
    exercise(test_db.url.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_within_the_timeout() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once; the
    // pool gives up after its timeout instead of retrying forever.
    let url: DatabaseUrl = "postgres://nobody@127.0.0.1:1/none".parse().unwrap();
    let options = PoolOptions {
        max_connections: 1,
        connect_timeout: std::time::Duration::from_secs(1),
    };
    let started = std::time::Instant::now();
    let err = Database::open(url, options).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    match err {
        StorageError::Connect { backend, url, .. } => {
            assert_eq!(backend, Backend::Postgres);
            assert_eq!(url, "postgres://nobody@127.0.0.1:1/none");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn test_urls_get_a_fresh_database_name() {
    assert_eq!(
        common::with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
    assert_eq!(
        common::with_database("mysql://root@h:3306", "x"),
        "mysql://root@h:3306/x"
    );
    assert_eq!(
        common::host_port("mysql://root:pw@127.0.0.1/test", 3306),
        Some(SocketAddr::from(([127, 0, 0, 1], 3306)))
    );
}

/// Write transactions that read before they write, many at once on one SQLite file: each waits
/// for the write lock instead of failing with "database is locked" (which a deferred SQLite
/// transaction does when another writer holds the lock at its first write).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_write_transactions_that_read_first_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(dir.path().join("grimnir.db"));
    let db = Database::open(url, PoolOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    db.run(move |conn| {
                        conn.write_transaction(|conn| {
                            let before = stations::list(conn)?.len();
                            // Hold the transaction a moment between the read and the write, so
                            // the writers overlap.
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            stations::create(conn, &NewStation::new(format!("{w}-{i}"), "UTC"))?;
                            Ok::<_, StorageError>(before)
                        })
                    })
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}, write {i}: {e}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let count = db.run(stations::list).await.unwrap().len();
    assert_eq!(count, 80);
}
