//! The DSP graph API: saved chains validated by grimnir-dsp, one applied per station. Runs on
//! SQLite, PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use axum::http::Method;
use common::api::{self, Credential, World};
use serde_json::{Value, json};

fn manager(world: &World) -> Credential {
    Credential::Bearer(world.manager_a.token.clone())
}

async fn graphs_are_validated_stored_and_applied(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let base = format!("/api/v1/stations/{}/dsp-graphs", world.a);

    // An impossible ratio is refused, naming the node and the parameter.
    let refused = api::call(Method::POST, &base)
        .auth(&manager(&world))
        .json(&json!({"name": "bad", "nodes": [
            {"type": "limiter"},
            {"type": "compressor", "config": {"ratio": 0.5}}
        ]}))
        .send(&world.app)
        .await;
    assert_eq!(refused.status, 422, "{name}: {}", refused.text);
    assert_eq!(refused.field(), Some("nodes[1].config.ratio"), "{name}");

    // An unknown node type is refused too, before anything is stored.
    let unknown = api::call(Method::POST, &base)
        .auth(&manager(&world))
        .json(&json!({"name": "bad", "nodes": [{"type": "exciter"}]}))
        .send(&world.app)
        .await;
    assert_eq!(unknown.status, 422, "{name}: {}", unknown.text);

    // Partial configs are filled with the defaults, and the graph is not applied yet.
    let created = api::call(Method::POST, &base)
        .auth(&manager(&world))
        .json(&json!({"name": " FM chain ", "nodes": [
            {"type": "loudness_normalize", "config": {"target_lufs": -16.0}},
            {"type": "limiter"}
        ]}))
        .send(&world.app)
        .await;
    assert_eq!(created.status, 201, "{name}: {}", created.text);
    let fm = created.body.clone();
    assert_eq!(fm["name"], "FM chain", "{name}");
    assert_eq!(fm["applied"], false, "{name}");
    assert_eq!(fm["nodes"][0]["type"], "loudness_normalize", "{name}");
    assert_eq!(fm["nodes"][0]["config"]["target_lufs"], -16.0, "{name}");
    let limiter = &fm["nodes"][1]["config"];
    assert!(
        limiter["threshold_db"].is_number() && limiter["lookahead_ms"].is_number(),
        "{name}: defaults not filled in: {limiter}"
    );
    let fm_id = fm["id"].as_str().unwrap().to_owned();

    let second = api::call(Method::POST, &base)
        .auth(&manager(&world))
        .json(&json!({"name": "AM chain", "nodes": [{"type": "agc"}]}))
        .send(&world.app)
        .await;
    assert_eq!(second.status, 201, "{name}: {}", second.text);
    let am_id = second.body["id"].as_str().unwrap().to_owned();

    // Applying one and then the other leaves exactly the last one applied.
    for id in [&fm_id, &am_id] {
        let applied = api::call(Method::POST, &format!("{base}/{id}/apply"))
            .auth(&manager(&world))
            .send(&world.app)
            .await;
        assert_eq!(applied.status, 200, "{name}: {}", applied.text);
        assert_eq!(applied.body["applied"], true, "{name}");
    }
    let list = api::call(Method::GET, &base)
        .auth(&Credential::Bearer(world.dj_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(list.status, 200, "{name}: {}", list.text);
    assert_eq!(list.body["total"], 2, "{name}");
    let applied: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["applied"] == Value::Bool(true))
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["AM chain"], "{name}");

    // A change to the nodes is validated like a new graph, and replaces the list whole.
    let bad_change = api::call(Method::PATCH, &format!("{base}/{fm_id}"))
        .auth(&manager(&world))
        .json(&json!({"nodes": [{"type": "limiter", "config": {"release_ms": -1}}]}))
        .send(&world.app)
        .await;
    assert_eq!(bad_change.status, 422, "{name}: {}", bad_change.text);
    assert_eq!(
        bad_change.field(),
        Some("nodes[0].config.release_ms"),
        "{name}"
    );
    let changed = api::call(Method::PATCH, &format!("{base}/{fm_id}"))
        .auth(&manager(&world))
        .json(&json!({"description": "for the FM mount", "nodes": [{"type": "limiter"}]}))
        .send(&world.app)
        .await;
    assert_eq!(changed.status, 200, "{name}: {}", changed.text);
    assert_eq!(changed.body["nodes"].as_array().unwrap().len(), 1, "{name}");
    assert_eq!(changed.body["description"], "for the FM mount", "{name}");
    assert_eq!(changed.body["name"], "FM chain", "{name}");

    // A graph of station A is not found through station B, even by an admin.
    let elsewhere = api::call(
        Method::GET,
        &format!("/api/v1/stations/{}/dsp-graphs/{fm_id}", world.b),
    )
    .auth(&Credential::Bearer(world.admin.token.clone()))
    .send(&world.app)
    .await;
    assert_eq!(elsewhere.status, 404, "{name}: {}", elsewhere.text);

    // Deleting the applied graph leaves none applied.
    let deleted = api::call(Method::DELETE, &format!("{base}/{am_id}"))
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);
    let station = world.a;
    let left = world
        .state
        .db
        .run(move |c| grimnir_server::db::dsp_graphs::applied(c, station))
        .await
        .unwrap();
    assert!(left.is_none(), "{name}: {left:?}");
    let gone = api::call(Method::POST, &format!("{base}/{am_id}/apply"))
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(gone.status, 404, "{name}: {}", gone.text);

    // Every change is in the audit log.
    let audit = api::call(
        Method::GET,
        &format!("/api/v1/audit?station_id={}&limit=200", world.a),
    )
    .auth(&manager(&world))
    .send(&world.app)
    .await;
    assert_eq!(audit.status, 200, "{name}: {}", audit.text);
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("dsp_graph."))
        .collect();
    for action in [
        "dsp_graph.create",
        "dsp_graph.apply",
        "dsp_graph.update",
        "dsp_graph.delete",
    ] {
        assert!(actions.contains(&action), "{name}: {action} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_are_validated_stored_and_applied_on_every_backend() {
    for backend in api::backends() {
        graphs_are_validated_stored_and_applied(&backend).await;
    }
}
