//! The programme through the API, on SQLite, PostgreSQL and MariaDB: smart blocks, clocks,
//! shows and the grid (CRUD, and errors that name the field), smart-block previews and clock
//! simulations (deterministic for a seed), and the schedule (refresh, list, edit) with the
//! stored timeline read back by `db::schedule::timeline`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use common::api::{self, Answer, Credential, World, call};
use diesel::prelude::*;
use grimnir_server::db::schema::{
    clock_slots, media_items, media_tag_links, schedule_entries, smart_blocks, tags,
};
use grimnir_server::db::stations::StationId;
use grimnir_server::db::{Database, schedule};
use serde_json::{Value, json};

/// Media rows as the upload API would write them: `n` tracks by `n / 3` artists, every other
/// one tagged `rock`, and a station ID jingle tagged `jingle`. Returns the track ids and the
/// jingle's id.
async fn library(db: &Database, station: StationId, n: usize) -> (Vec<String>, String) {
    db.run(move |conn| {
        let at = Utc::now().naive_utc();
        let station = station.to_string();
        let mut tag_ids = std::collections::BTreeMap::new();
        for name in ["rock", "jingle"] {
            let id = uuid::Uuid::new_v4().to_string();
            diesel::insert_into(tags::table)
                .values((
                    tags::id.eq(&id),
                    tags::station_id.eq(&station),
                    tags::name.eq(name),
                    tags::created_at.eq(at),
                ))
                .execute(conn)?;
            tag_ids.insert(name, id);
        }
        let mut insert =
            |i: usize, title: String, artist: Option<String>, ms: i64, tag: Option<&str>| {
                let id = uuid::Uuid::new_v4().to_string();
                diesel::insert_into(media_items::table)
                    .values((
                        media_items::id.eq(&id),
                        media_items::station_id.eq(&station),
                        media_items::title.eq(title),
                        media_items::artist.eq(artist),
                        media_items::album.eq(Some(format!("Album {}", i % 4))),
                        media_items::storage_key.eq(format!("media/{id}.flac")),
                        media_items::content_type.eq("audio/flac"),
                        media_items::size_bytes.eq(1_000_000_i64),
                        media_items::duration_ms.eq(Some(ms)),
                        media_items::cue_in_ms.eq(Some(500_i64)),
                        media_items::cue_out_ms.eq(Some(ms - 1000)),
                        media_items::analysis_state.eq("done"),
                        media_items::metadata.eq(r#"{"genre":"rock","year":1999}"#),
                        media_items::created_at.eq(at + TimeDelta::seconds(i as i64)),
                        media_items::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                if let Some(tag) = tag {
                    diesel::insert_into(media_tag_links::table)
                        .values((
                            media_tag_links::media_id.eq(&id),
                            media_tag_links::tag_id.eq(&tag_ids[tag]),
                        ))
                        .execute(conn)?;
                }
                Ok::<_, diesel::result::Error>(id)
            };
        let mut tracks = Vec::new();
        for i in 0..n {
            let tag = (i % 2 == 0).then_some("rock");
            tracks.push(insert(
                i,
                format!("Track {i}"),
                Some(format!("Artist {}", i / 3)),
                180_000 + 7_000 * i as i64,
                tag,
            )?);
        }
        let jingle = insert(n, "Station ID".into(), None, 9_000, Some("jingle"))?;
        Ok((tracks, jingle))
    })
    .await
    .unwrap()
}

struct Station {
    world: World,
    manager: Credential,
    dj: Credential,
    base: String,
    tracks: Vec<String>,
    jingle: String,
}

async fn fill(db: Database) -> Station {
    let world = World::new(common::state(db.clone())).await;
    let (tracks, jingle) = library(&db, world.a, 30).await;
    Station {
        manager: Credential::Bearer(world.manager_a.token.clone()),
        dj: Credential::Bearer(world.dj_a.token.clone()),
        base: format!("/api/v1/stations/{}", world.a),
        world,
        tracks,
        jingle,
    }
}

/// [`station`] without holding the backend across an await.
fn station_of(backend: &api::Backend) -> impl std::future::Future<Output = Station> + Send + use<> {
    let url = backend.url.clone();
    async move {
        let db = Database::open(url, grimnir_server::db::PoolOptions::default())
            .await
            .unwrap();
        db.migrate().await.unwrap();
        fill(db).await
    }
}

impl Station {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let credential = if method == Method::GET {
            &self.dj
        } else {
            &self.manager
        };
        let mut c = call(method, &format!("{}{path}", self.base)).auth(credential);
        if let Some(body) = body {
            c = c.json(&body);
        }
        c.send(&self.world.app).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let answer = self.send(method.clone(), path, body).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.text
        );
        answer.body
    }

    /// Refused with `status` and `code`, naming `field`.
    async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Value,
        status: u16,
        field: Option<&str>,
    ) -> Answer {
        let answer = self.send(method.clone(), path, Some(body.clone())).await;
        assert_eq!(
            (answer.status.as_u16(), answer.field()),
            (status, field),
            "{method} {path} {body}: {}",
            answer.text
        );
        answer
    }

    async fn rock_block(&self) -> String {
        let block = self
            .ok(
                Method::POST,
                "/smart-blocks",
                Some(json!({
                    "name": "Rock",
                    "description": "guitars",
                    "rules": {
                        "filter": {"tags": {"include": ["rock"]}},
                        "separation": {"artist": {"minutes": 30}},
                        "duration": {"target": "20m", "tolerance": 60}
                    }
                })),
                201,
            )
            .await;
        block["id"].as_str().unwrap().to_owned()
    }

    async fn clock(&self, block: &str) -> String {
        let clock = self
            .ok(
                Method::POST,
                "/clocks",
                Some(json!({
                    "name": "Standard hour",
                    "slots": [
                        {"hard_item": {"media": self.jingle}},
                        {"smart_block": {"block": block}},
                        {"stopset": {"items": [self.tracks[1], self.tracks[3]]}, "hard_start": "30:00"},
                        {"smart_block": {"block": block}}
                    ]
                })),
                201,
            )
            .await;
        clock["id"].as_str().unwrap().to_owned()
    }
}

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(api::Backend) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runs: Vec<_> = api::backends()
        .into_iter()
        .map(|backend| {
            let name = backend.name;
            (name, tokio::spawn(test(backend)))
        })
        .collect();
    let mut failed = None;
    for (name, run) in runs {
        if let Err(e) = run.await {
            eprintln!("{name} failed");
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_blocks_clocks_shows_and_the_grid() {
    each_backend(|backend| async move {
        let s = station_of(&backend);
        let s = s.await;
        let name = backend.name;

        // Smart blocks: stored as the planner's block, defaults filled in.
        let block = s.rock_block().await;
        let got = s.ok(Method::GET, &format!("/smart-blocks/{block}"), None, 200).await;
        assert_eq!(got["name"], "Rock", "{name}");
        assert_eq!(got["rules"]["separation"]["artist"]["minutes"], 30);
        assert_eq!(got["rules"]["order"], "random");
        assert_eq!(got["rules"]["duration"]["target"], 1200);
        assert!(got["rules"].get("id").is_none());
        let rules: String = s
            .world
            .state
            .db
            .run({
                let block = block.clone();
                move |c| Ok(smart_blocks::table.find(block).select(smart_blocks::rules).first(c)?)
            })
            .await
            .unwrap();
        let stored: grimnir_planner::SmartBlock = serde_json::from_str(&rules).unwrap();
        assert_eq!((stored.id.as_str(), stored.name.as_str()), (block.as_str(), "Rock"));

        let bad = |rules: Value| json!({"name": "Bad", "rules": rules});
        s.refused(Method::POST, "/smart-blocks",
            bad(json!({"separation": {"artist": {"minutes": 20000}}})), 422,
            Some("rules.separation.artist.minutes")).await;
        s.refused(Method::POST, "/smart-blocks", bad(json!({"colour": "red"})), 422,
            Some("rules.colour")).await;
        s.refused(Method::POST, "/smart-blocks", bad(json!({"id": "x"})), 422,
            Some("rules.id")).await;
        s.refused(Method::POST, "/smart-blocks",
            bad(json!({"quotas": [{"tag_share": {"tag": "rock", "at_least": 80, "at_most": 20}}]})),
            422, Some("rules.quotas[0].tag_share.at_least")).await;
        s.refused(Method::POST, "/smart-blocks", json!({"name": " ", "rules": {}}), 422,
            Some("name")).await;

        let renamed = s.ok(Method::PATCH, &format!("/smart-blocks/{block}"),
            Some(json!({"name": "Rock & Roll", "description": null})), 200).await;
        assert_eq!(renamed["name"], "Rock & Roll");
        assert!(renamed["description"].is_null());
        assert_eq!(renamed["rules"]["separation"]["artist"]["minutes"], 30, "rules kept");
        s.refused(Method::PATCH, &format!("/smart-blocks/{block}"),
            json!({"rules": {"duration": {"target": 0}}}), 422,
            Some("rules.duration.target")).await;
        let list = s.ok(Method::GET, "/smart-blocks", None, 200).await;
        assert_eq!(list["total"], 1);
        // Another station does not see it.
        let elsewhere = call(Method::GET,
            &format!("/api/v1/stations/{}/smart-blocks/{block}", s.world.b))
            .auth(&Credential::Bearer(s.world.admin.token.clone()))
            .send(&s.world.app).await;
        assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

        // Clocks: slots in order, references checked, the planner's slot in `options`.
        let clock = s.clock(&block).await;
        let got = s.ok(Method::GET, &format!("/clocks/{clock}"), None, 200).await;
        let slots = got["slots"].as_array().unwrap();
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[0]["hard_item"]["media"], s.jingle.as_str());
        assert_eq!(slots[2]["hard_start"], 1800);
        let rows: Vec<(i32, String, Option<String>, bool, String)> = s
            .world
            .state
            .db
            .run({
                let clock = clock.clone();
                move |c| {
                    Ok(clock_slots::table
                        .filter(clock_slots::clock_hour_id.eq(clock))
                        .order(clock_slots::position)
                        .select((clock_slots::position, clock_slots::kind,
                            clock_slots::smart_block_id, clock_slots::hard_start,
                            clock_slots::options))
                        .load(c)?)
                }
            })
            .await
            .unwrap();
        let kinds: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(kinds, ["hard_item", "smart_block", "stopset", "smart_block"]);
        assert_eq!(rows[1].2.as_deref(), Some(block.as_str()));
        assert!(rows[2].3 && !rows[1].3);
        let slot: grimnir_planner::Slot = serde_json::from_str(&rows[2].4).unwrap();
        assert_eq!(slot.hard_start, Some(grimnir_planner::Millis::from_minutes(30)));

        let missing = uuid::Uuid::new_v4();
        let clock_with = |slots: Value| json!({"name": "Bad", "slots": slots});
        s.refused(Method::POST, "/clocks",
            clock_with(json!([{"hard_item": {"media": s.jingle}},
                              {"smart_block": {"block": missing}}])),
            422, Some("slots[1].smart_block.block")).await;
        s.refused(Method::POST, "/clocks",
            clock_with(json!([{"stopset": {"items": [s.jingle, missing]}}])),
            422, Some("slots[0].stopset.items[1]")).await;
        s.refused(Method::POST, "/clocks",
            clock_with(json!([{"smart_block": {"block": block}, "hard_start": "61:00"}])),
            422, Some("slots[0].hard_start")).await;
        s.refused(Method::POST, "/clocks",
            clock_with(json!([{"smart_block": {"block": block}, "hard_item": {"media": s.jingle}}])),
            422, Some("slots[0]")).await;
        s.refused(Method::POST, "/clocks", clock_with(json!([])), 422, Some("slots")).await;
        // Another station's block is not this station's.
        let theirs = call(Method::POST, &format!("/api/v1/stations/{}/clocks", s.world.b))
            .auth(&Credential::Bearer(s.world.admin.token.clone()))
            .json(&clock_with(json!([{"smart_block": {"block": block}}])))
            .send(&s.world.app).await;
        assert_eq!((theirs.status.as_u16(), theirs.field()), (422, Some("slots[0].smart_block.block")));
        let changed = s.ok(Method::PATCH, &format!("/clocks/{clock}"),
            Some(json!({"slots": [{"smart_block": {"block": block}}]})), 200).await;
        assert_eq!(changed["slots"].as_array().unwrap().len(), 1);
        assert_eq!(changed["name"], "Standard hour");

        // The grid: references and hours checked.
        let programme = s.ok(Method::GET, "/programme", None, 200).await;
        assert_eq!(programme["trim_fade"], 2.0);
        s.refused(Method::PUT, "/programme", json!({"grid": {"default": missing}}), 422,
            Some("grid.default")).await;
        s.refused(Method::PUT, "/programme",
            json!({"grid": {"rules": [{"days": ["mon"], "from": 6, "to": 25, "clock": clock}]}}),
            422, Some("grid.rules[0].to")).await;
        s.refused(Method::PUT, "/programme", json!({"filler": missing}), 422, Some("filler")).await;
        s.refused(Method::PUT, "/programme", json!({"crossfade": 45}), 422, Some("crossfade")).await;
        let set = s.ok(Method::PUT, "/programme", Some(json!({
            "grid": {"default": clock, "rules": [{"days": ["sat", "sun"], "from": 0, "to": 24, "clock": clock}]},
            "filler": block, "crossfade": 1.5
        })), 200).await;
        assert_eq!(set["grid"]["default"], clock.as_str());
        assert_eq!(set["crossfade"], 1.5);

        // In use: refused with 409.
        s.refused(Method::DELETE, &format!("/smart-blocks/{block}"), json!({}), 409, None).await;
        s.refused(Method::DELETE, &format!("/clocks/{clock}"), json!({}), 409, None).await;

        // Shows.
        let show = s.ok(Method::POST, "/shows", Some(json!({
            "name": "Jazz Night",
            "definition": {
                "repeat": {"weekly": ["fri"]}, "starts_on": "2026-01-02",
                "start": "20:00:00", "end": "22:00:00",
                "content": {"smart_block": block}
            }
        })), 201).await;
        let show_id = show["id"].as_str().unwrap().to_owned();
        assert_eq!(show["definition"]["underbooked"], "filler");
        // chrono writes weekdays back as `Fri`; both forms are read.
        assert_eq!(show["definition"]["repeat"]["weekly"], json!(["Fri"]));
        let definition = |d: Value| json!({"name": "Bad", "definition": d});
        s.refused(Method::POST, "/shows", definition(json!({
            "starts_on": "2026-01-02", "start": "20:00:00", "end": "22:00:00",
            "duration": 3600, "content": "live"})), 422, Some("definition.duration")).await;
        s.refused(Method::POST, "/shows", definition(json!({
            "starts_on": "2026-01-02", "start": "20:00:00", "end": "22:00:00",
            "content": {"smart_block": missing}})), 422, Some("definition.content.smart_block")).await;
        s.refused(Method::POST, "/shows", definition(json!({
            "starts_on": "2026-01-02", "start": "20:00:00", "end": "22:00:00",
            "content": {"list": [s.jingle, missing]}})), 422, Some("definition.content.list[1]")).await;
        s.refused(Method::POST, "/shows", definition(json!({
            "starts_on": "2026-01-02", "start": "8 pm", "end": "22:00:00",
            "content": "live"})), 422, Some("definition.start")).await;
        s.refused(Method::POST, "/shows", definition(json!({
            "repeat": {"every_n_weeks": {"n": 0, "days": ["mon"]}},
            "starts_on": "2026-01-02", "start": "20:00:00", "end": "22:00:00",
            "content": "live"})), 422, Some("definition.repeat.every_n_weeks.n")).await;
        // A block a show uses cannot go either.
        let patched = s.ok(Method::PATCH, &format!("/shows/{show_id}"),
            Some(json!({"name": "Late Jazz"})), 200).await;
        assert_eq!(patched["definition"]["end"], "22:00:00");
        assert_eq!(s.ok(Method::GET, "/shows", None, 200).await["total"], 1);
        s.ok(Method::DELETE, &format!("/shows/{show_id}"), None, 204).await;
        s.ok(Method::GET, &format!("/shows/{show_id}"), None, 404).await;

        // Freed: the grid, then the clock, then the block.
        s.ok(Method::PUT, "/programme", Some(json!({})), 200).await;
        s.ok(Method::DELETE, &format!("/clocks/{clock}"), None, 204).await;
        s.ok(Method::DELETE, &format!("/smart-blocks/{block}"), None, 204).await;
        assert_eq!(s.ok(Method::GET, "/clocks", None, 200).await["total"], 0);
        assert_eq!(s.ok(Method::GET, "/smart-blocks", None, 200).await["total"], 0);

        // The audit log has the changes.
        let audit = call(Method::GET, &format!("/api/v1/audit?station_id={}&limit=200", s.world.a))
            .auth(&s.manager).send(&s.world.app).await;
        let actions: Vec<&str> = audit.body["items"].as_array().unwrap().iter()
            .filter_map(|e| e["action"].as_str()).collect();
        for action in ["smart_block.create", "smart_block.update", "smart_block.delete",
                       "clock.create", "clock.update", "clock.delete", "show.create",
                       "show.update", "show.delete", "programme.update"] {
            assert!(actions.contains(&action), "{name}: {action} not in {actions:?}");
        }
    })
    .await;
}

fn times(entries: &[Value]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    entries
        .iter()
        .map(|e| {
            (
                e["starts_at"].as_str().unwrap().parse().unwrap(),
                e["ends_at"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_are_the_planner_s_and_deterministic() {
    each_backend(|backend| async move {
        let s = station_of(&backend);
        let s = s.await;
        let block = s.rock_block().await;
        let at: DateTime<Utc> = "2026-11-24T10:05:00Z".parse().unwrap();
        let path = format!("/smart-blocks/{block}/materialize");
        let body = |seed: u64| json!({"duration": "30m", "seed": seed, "at": at});
        let first = s.ok(Method::POST, &path, Some(body(7)), 200).await;
        let items = first["items"].as_array().unwrap();
        assert!(items.len() >= 5, "{first}");
        // The items tile the stretch exactly; only rock tracks; lengths add up.
        let spans = times(items);
        assert_eq!(spans[0].0, at);
        assert_eq!(spans.last().unwrap().1, at + TimeDelta::minutes(30));
        assert!(spans.windows(2).all(|w| w[0].1 == w[1].0));
        let rock: Vec<&String> = s.tracks.iter().step_by(2).collect();
        for item in items {
            assert_eq!(item["source_type"], "media");
            let id = item["source_id"].as_str().unwrap().to_owned();
            assert!(rock.contains(&&id), "{id} is not a rock track");
            assert_eq!(item["block_id"], block.as_str());
            assert_eq!(item["tier"], "automation");
            let (start, end) = times(std::slice::from_ref(item))[0];
            assert_eq!(item["duration_ms"], (end - start).num_milliseconds());
            assert_eq!(item["entry"]["source"]["id"], id.as_str());
        }
        assert!(items.last().unwrap()["trimmed"].as_bool().unwrap());
        // Same seed, same items; another seed, another choice.
        let again = s.ok(Method::POST, &path, Some(body(7)), 200).await;
        assert_eq!(again, first);
        let other = s.ok(Method::POST, &path, Some(body(8)), 200).await;
        assert_ne!(other["items"], first["items"]);
        // DJs may preview; bad lengths name the field.
        let dj = call(Method::POST, &format!("{}{path}", s.base))
            .auth(&s.dj)
            .json(&body(7))
            .send(&s.world.app)
            .await;
        assert_eq!(dj.status, StatusCode::OK);
        s.refused(
            Method::POST,
            &path,
            json!({"duration": 0}),
            422,
            Some("duration"),
        )
        .await;
        s.refused(
            Method::POST,
            &path,
            json!({"duration": "forever"}),
            422,
            Some("duration"),
        )
        .await;
        s.refused(
            Method::POST,
            &path,
            json!({"duration": "25h"}),
            422,
            Some("duration"),
        )
        .await;
        s.ok(
            Method::POST,
            &format!("/smart-blocks/{}/materialize", uuid::Uuid::new_v4()),
            Some(body(7)),
            404,
        )
        .await;

        // A clock for an hour: the jingle at the top, the stopset at half past.
        let clock = s.clock(&block).await;
        let start: DateTime<Utc> = "2026-11-24T14:00:00Z".parse().unwrap();
        let path = format!("/clocks/{clock}/simulate");
        let hour = s
            .ok(
                Method::POST,
                &path,
                Some(json!({"start": start, "seed": 3})),
                200,
            )
            .await;
        let entries = hour["entries"].as_array().unwrap();
        let spans = times(entries);
        assert_eq!(spans[0].0, start);
        assert!(spans.last().unwrap().1 >= start + TimeDelta::hours(1));
        assert!(spans.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(entries[0]["source_id"], s.jingle.as_str());
        assert_eq!(entries[0]["clock_id"], clock.as_str());
        assert_eq!(entries[0]["kind"], "hard_item");
        let half_past = entries.iter().find(|e| e["slot"] == 2).unwrap();
        assert_eq!(half_past["starts_at"], "2026-11-24T14:30:00Z");
        assert_eq!(half_past["source_id"], s.tracks[1].as_str());
        assert_eq!(
            s.ok(
                Method::POST,
                &path,
                Some(json!({"start": start, "seed": 3})),
                200
            )
            .await,
            hour
        );
        s.refused(Method::POST, &path, json!({"seed": 3}), 422, Some("start"))
            .await;
        // Nothing was stored.
        let stored = s
            .ok(
                Method::GET,
                "/schedule?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z",
                None,
                200,
            )
            .await;
        assert_eq!(stored["total"], 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_refresh_list_edit_and_the_stored_timeline() {
    each_backend(|backend| async move {
        let s = station_of(&backend);
        let s = s.await;
        let name = backend.name;
        let block = s.rock_block().await;
        let clock = s.clock(&block).await;
        s.ok(
            Method::PUT,
            "/programme",
            Some(json!({"grid": {"default": clock}})),
            200,
        )
        .await;
        let from: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let to = from + TimeDelta::hours(3);
        let window = json!({"from": from, "to": to, "seed": 5});

        let summary = s
            .ok(Method::POST, "/schedule/refresh", Some(window.clone()), 200)
            .await;
        let written = summary["entries_written"].as_u64().unwrap();
        assert!(written > 20, "{summary}");
        assert_eq!(summary["entries_removed"], 0);
        assert_eq!(summary["planned_from"], "2026-11-24T10:00:00Z");
        assert_eq!(summary["seed"], 5);

        // Listed in time order, tiling the window; pages of it.
        let list_path = format!(
            "/schedule?from={}&to={}&limit=200",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let list = s.ok(Method::GET, &list_path, None, 200).await;
        assert_eq!(list["total"].as_u64(), Some(written), "{name}");
        let entries = list["items"].as_array().unwrap().clone();
        let spans = times(&entries);
        assert_eq!(spans[0].0, from);
        assert!(spans.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(spans.last().unwrap().1 >= to);
        assert_eq!(entries[0]["source_id"], s.jingle.as_str());
        let page = s
            .ok(
                Method::GET,
                &list_path.replace("limit=200", "limit=5&offset=5"),
                None,
                200,
            )
            .await;
        assert_eq!(page["items"].as_array().unwrap()[0]["id"], entries[5]["id"]);
        s.refused(
            Method::GET,
            "/schedule?from=yesterday",
            json!({}),
            400,
            Some("from"),
        )
        .await;

        // The contract: metadata is the planner's entry, the columns mirror it, and timeline()
        // rebuilds what was planned.
        let station = s.world.a;
        let timeline = s
            .world
            .state
            .db
            .run(move |c| schedule::timeline(c, station, from, to))
            .await
            .unwrap();
        assert_eq!(timeline.entries.len() as u64, written);
        // Exactly what the planner makes for that window and seed.
        let planned = s
            .world
            .state
            .db
            .run(move |c| {
                Ok(grimnir_server::planning::plan_window(
                    c, station, from, to, 5,
                ))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(timeline.entries, planned.timeline.entries, "{name}");
        for (entry, listed) in timeline.entries.iter().zip(&entries) {
            assert_eq!(serde_json::to_value(entry).unwrap(), listed["entry"]);
        }
        let rows: Vec<(String, chrono::NaiveDateTime, i16, String, Option<String>)> = s
            .world
            .state
            .db
            .run(move |c| {
                Ok(schedule_entries::table
                    .filter(schedule_entries::station_id.eq(station.to_string()))
                    .order(schedule_entries::starts_at)
                    .select((
                        schedule_entries::metadata,
                        schedule_entries::starts_at,
                        schedule_entries::tier,
                        schedule_entries::source_type,
                        schedule_entries::source_id,
                    ))
                    .load(c)?)
            })
            .await
            .unwrap();
        for (metadata, starts_at, tier, source_type, source_id) in &rows {
            let entry: grimnir_planner::Entry = serde_json::from_str(metadata).unwrap();
            assert_eq!(entry.start, starts_at.and_utc());
            assert_eq!(*tier, i16::from(entry.tier.number()));
            assert_eq!(source_type, "media");
            assert_eq!(
                source_id.as_deref(),
                entry.source.media_id().map(|m| m.as_str())
            );
        }

        // Again with the same seed: the same schedule, replacing the old entries.
        let again = s
            .ok(Method::POST, "/schedule/refresh", Some(window), 200)
            .await;
        assert_eq!(again["entries_removed"].as_u64(), Some(written));
        let relisted = s.ok(Method::GET, &list_path, None, 200).await;
        let entry_of = |v: &Value| {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["entry"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(entry_of(&relisted), entry_of(&list));
        let entries = relisted["items"].as_array().unwrap().clone();
        let spans = times(&entries);

        // Edit: replace a source, shorten, and refuse overlaps naming the end.
        let id = |i: usize| entries[i]["id"].as_str().unwrap().to_owned();
        let replaced = s
            .ok(
                Method::PATCH,
                &format!("/schedule/{}", id(3)),
                Some(json!({"source": {"type": "media", "media_id": s.tracks[5]}})),
                200,
            )
            .await;
        assert_eq!(replaced["source_id"], s.tracks[5].as_str());
        assert_eq!(replaced["title"], "Track 5");
        assert_eq!(replaced["starts_at"], entries[3]["starts_at"]);
        assert_eq!(replaced["entry"]["source"]["id"], s.tracks[5].as_str());
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(3)),
            json!({"starts_at": entries[2]["starts_at"]}),
            409,
            Some("starts_at"),
        )
        .await;
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(3)),
            json!({"ends_at": entries[4]["ends_at"]}),
            409,
            Some("ends_at"),
        )
        .await;
        let shorter_end = spans[4].1 - TimeDelta::seconds(10);
        let shortened = s
            .ok(
                Method::PATCH,
                &format!("/schedule/{}", id(4)),
                Some(
                    json!({"ends_at": shorter_end, "source": {"type": "live", "name": "Phone-in"}}),
                ),
                200,
            )
            .await;
        assert_eq!(shortened["tier"], "live_scheduled");
        assert_eq!(shortened["source_type"], "live");
        assert_eq!(shortened["title"], "Phone-in");
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(4)),
            json!({"ends_at": entries[4]["starts_at"]}),
            422,
            Some("ends_at"),
        )
        .await;
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(4)),
            json!({"source": {"type": "live", "name": " "}}),
            422,
            Some("source.name"),
        )
        .await;
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(4)),
            json!({"source": {"type": "media", "media_id": uuid::Uuid::new_v4()}}),
            422,
            Some("source.media_id"),
        )
        .await;
        s.refused(
            Method::PATCH,
            &format!("/schedule/{}", id(4)),
            json!({"source": {"type": "webstream", "webstream_id": uuid::Uuid::new_v4()}}),
            422,
            Some("source.webstream_id"),
        )
        .await;
        s.ok(
            Method::PATCH,
            &format!("/schedule/{}", uuid::Uuid::new_v4()),
            Some(json!({"ends_at": to})),
            404,
        )
        .await;
        // DJs read, but do not edit or refresh.
        let dj = call(Method::POST, &format!("{}/schedule/refresh", s.base))
            .auth(&s.dj)
            .json(&json!({}))
            .send(&s.world.app)
            .await;
        assert_eq!(dj.status, StatusCode::FORBIDDEN);

        // The stored timeline shows the edits.
        let timeline = s
            .world
            .state
            .db
            .run(move |c| schedule::timeline(c, station, from, to))
            .await
            .unwrap();
        assert_eq!(
            timeline.entries[3].source.media_id().map(|m| m.to_string()),
            Some(s.tracks[5].clone())
        );
        assert_eq!(timeline.entries[4].end, shorter_end);
        assert!(matches!(
            timeline.entries[4].source,
            grimnir_planner::Source::Live { .. }
        ));
        assert_eq!(timeline.timezone, chrono_tz::Europe::Oslo);

        // A refresh from inside an entry keeps the entry on air and plans on from its end.
        let inside = spans[10].0 + TimeDelta::seconds(5);
        let partial = s
            .ok(
                Method::POST,
                "/schedule/refresh",
                Some(json!({"from": inside, "to": to, "seed": 9})),
                200,
            )
            .await;
        assert_eq!(
            partial["planned_from"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            spans[10].1
        );
        let timeline = s
            .world
            .state
            .db
            .run(move |c| schedule::timeline(c, station, from, to + TimeDelta::hours(1)))
            .await
            .unwrap();
        assert!(
            timeline.entries.windows(2).all(|w| w[0].end <= w[1].start),
            "{name}: overlap"
        );
        assert_eq!(
            timeline.entries[3].source.media_id().map(|m| m.to_string()),
            Some(s.tracks[5].clone()),
            "entries before the window are kept"
        );

        // A programme that no longer plans is a 409 naming the clock.
        let gone = s.jingle.clone();
        s.world
            .state
            .db
            .run(move |c| {
                Ok(diesel::delete(media_items::table.find(gone))
                    .execute(c)
                    .map(drop)?)
            })
            .await
            .unwrap();
        let broken = s
            .send(
                Method::POST,
                "/schedule/refresh",
                Some(json!({"from": from})),
            )
            .await;
        assert_eq!(broken.status, StatusCode::CONFLICT, "{}", broken.text);
        assert!(
            broken.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Standard hour"),
            "{}",
            broken.text
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_describes_a_station_as_a_station_file_does() {
    use grimnir_planner::{Format, Millis, Planner, StationConfig};
    use grimnir_server::db::programme;

    each_backend(|backend| async move {
        let s = station_of(&backend);
        let s = s.await;
        let block = s.rock_block().await;
        let clock = s.clock(&block).await;
        s.ok(Method::POST, "/shows", Some(json!({
            "name": "Jazz Night",
            "definition": {"repeat": {"weekly": ["fri"]}, "starts_on": "2026-01-02",
                           "start": "20:00:00", "duration": "2h", "content": {"smart_block": block}}
        })), 201).await;
        s.ok(
            Method::PUT,
            "/programme",
            Some(json!({
                "grid": {"default": clock}, "filler": block, "crossfade": 2, "trim_fade": 1
            })),
            200,
        )
        .await;

        let station = s.world.a;
        let (config, library) = s
            .world
            .state
            .db
            .run(move |c| programme::load(c, station))
            .await
            .unwrap();
        // What a station file would say, read back by the planner's own file reader.
        let file = serde_json::to_string(&config).unwrap();
        let read = StationConfig::from_str_as(&file, Format::Json).unwrap();
        assert_eq!(read, config);
        assert_eq!(config.station.id.as_str(), station.to_string());
        assert_eq!(config.station.timezone, chrono_tz::Europe::Oslo);
        assert_eq!(config.station.crossfade, Millis::from_secs(2));
        assert_eq!(
            config.station.filler.as_ref().map(|b| b.as_str()),
            Some(block.as_str())
        );
        assert_eq!(config.smart_blocks[0].id.as_str(), block);
        assert_eq!(config.clocks[0].id.as_str(), clock);
        assert_eq!(config.clocks[0].slots.len(), 4);
        assert_eq!(config.shows[0].name, "Jazz Night");
        assert_eq!(
            config.grid.default.as_ref().map(|c| c.as_str()),
            Some(clock.as_str())
        );

        // The library: every row with a length, with its cue points, tags and metadata.
        assert_eq!(library.items.len(), s.tracks.len() + 1);
        let track = library
            .items
            .iter()
            .find(|i| i.id.as_str() == s.tracks[2])
            .unwrap();
        assert_eq!(track.title, "Track 2");
        assert_eq!(track.artists, ["Artist 0"]);
        assert_eq!(track.album.as_deref(), Some("Album 2"));
        assert_eq!(track.cue_in, Millis::from_millis(500));
        assert_eq!(
            track.cue_out,
            Some(Millis::from_millis(180_000 + 14_000 - 1000))
        );
        assert_eq!(track.genre.as_deref(), Some("rock"));
        assert_eq!(track.year, Some(1999));
        assert!(track.tags.contains("rock"));
        let jingle = library
            .items
            .iter()
            .find(|i| i.id.as_str() == s.jingle)
            .unwrap();
        assert!(jingle.artists.is_empty() && jingle.tags.contains("jingle"));
        Planner::new(config, library).unwrap();
    })
    .await;
}
