//! Authentication over HTTP on SQLite, PostgreSQL and MariaDB: sign-in, refresh rotation and
//! reuse detection, sign-out, refused tokens (expired, forged, wrong algorithm, tampered,
//! revoked, of deleted or disabled users), bcrypt-imported users, API keys, rate limits and the
//! audit log.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use common::api::{self, Answer, Credential, PASSWORD, World, call};
use diesel::prelude::*;
use grimnir_server::audit;
use grimnir_server::auth::rate_limit::Quota;
use grimnir_server::auth::token::{AUDIENCE, AccessClaims, ISSUER};
use grimnir_server::auth::{Auth, RateLimits};
use grimnir_server::db::members::StationRole;
use grimnir_server::db::refresh_tokens;
use grimnir_server::db::users::{self, AccountRole, NewUser};
use grimnir_server::db::{Database, Page, schema};
use grimnir_server::http;
use serde_json::{Value, json};

async fn login(app: &axum::Router, email: &str, password: &str) -> Answer {
    call(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": email, "password": password}))
        .send(app)
        .await
}

async fn refresh(app: &axum::Router, token: &str) -> Answer {
    call(Method::POST, "/api/v1/auth/refresh")
        .json(&json!({"refresh_token": token}))
        .send(app)
        .await
}

async fn me(app: &axum::Router, credential: &Credential) -> Answer {
    call(Method::GET, "/api/v1/auth/me")
        .auth(credential)
        .send(app)
        .await
}

fn bearer(answer: &Answer) -> Credential {
    Credential::Bearer(answer.body["access_token"].as_str().unwrap().to_owned())
}

async fn audit_actions(db: &Database) -> Vec<String> {
    db.run(|c| audit::list(c, None, Page::ALL))
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Sign-in, refresh rotation, reuse detection and sign-out on one database.
async fn sessions(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db.clone())).await;
    let app = &world.app;

    // Wrong password and unknown email: the same answer.
    let wrong = login(app, &world.dj_a.email, "not the password").await;
    let unknown = login(app, "nobody@example.org", PASSWORD).await;
    for answer in [&wrong, &unknown] {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(answer.code(), "invalid_credentials");
        assert!(answer.headers.contains_key("www-authenticate"));
    }

    // Sign in (any case of the email).
    let first = login(app, &world.dj_a.email.to_uppercase(), PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK, "{name}: {}", first.text);
    assert_eq!(first.body["token_type"], "Bearer");
    assert_eq!(first.body["expires_in"], 900);
    assert_eq!(first.body["user"]["email"], world.dj_a.email);
    let me_first = me(app, &bearer(&first)).await;
    assert_eq!(me_first.status, StatusCode::OK);
    assert_eq!(me_first.body["credential"], "session");
    assert_eq!(me_first.body["stations"][0]["role"], "dj");
    let refresh_1 = first.body["refresh_token"].as_str().unwrap().to_owned();

    // Rotation: a new pair; the old refresh token is spent.
    let second = refresh(app, &refresh_1).await;
    assert_eq!(second.status, StatusCode::OK, "{name}: {}", second.text);
    let refresh_2 = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh_2, refresh_1);
    assert_eq!(second.body["session_id"], first.body["session_id"]);
    assert_eq!(me(app, &bearer(&second)).await.status, StatusCode::OK);
    let third = refresh(app, &refresh_2).await;
    assert_eq!(third.status, StatusCode::OK);
    let refresh_3 = third.body["refresh_token"].as_str().unwrap().to_owned();

    // Reuse of a spent token revokes the whole family: the newest refresh token and the
    // session's access tokens stop working.
    let reused = refresh(app, &refresh_1).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{name}");
    assert_eq!(reused.code(), "refresh_token_reused");
    let after = refresh(app, &refresh_3).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "invalid_token");
    let revoked = me(app, &bearer(&third)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.code(), "invalid_token");
    let session: grimnir_server::db::refresh_tokens::FamilyId =
        first.body["session_id"].as_str().unwrap().parse().unwrap();
    let family = db
        .run(move |c| refresh_tokens::family(c, session))
        .await
        .unwrap();
    assert_eq!(family.len(), 3, "{name}: one row per token of the family");
    assert!(family.iter().all(|t| t.revoked_at.is_some()));
    // Stored as hashes, never as the tokens.
    let hashes: Vec<String> = db
        .run(|c| {
            Ok(schema::refresh_tokens::table
                .select(schema::refresh_tokens::token_hash)
                .load(c)?)
        })
        .await
        .unwrap();
    assert!(
        hashes
            .iter()
            .all(|h| h.len() == 64 && ![&refresh_1, &refresh_2, &refresh_3].contains(&h))
    );

    // Another sign-in is another family, unaffected; sign-out ends it.
    let other = login(app, &world.dj_a.email, PASSWORD).await;
    assert_eq!(me(app, &bearer(&other)).await.status, StatusCode::OK);
    let out = call(Method::POST, "/api/v1/auth/logout")
        .json(&json!({"refresh_token": other.body["refresh_token"]}))
        .send(app)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(app, &bearer(&other)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(app, other.body["refresh_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Unknown tokens are accepted silently.
    let out = call(Method::POST, "/api/v1/auth/logout")
        .json(&json!({"refresh_token": "grt_nothing"}))
        .send(app)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);

    // Pruning deletes expired tokens only.
    let before = db
        .run(|c| Ok(schema::refresh_tokens::table.count().get_result::<i64>(c)?))
        .await
        .unwrap();
    let now = Utc::now().naive_utc();
    assert_eq!(
        db.run(move |c| refresh_tokens::prune(c, now))
            .await
            .unwrap(),
        0,
        "{name}"
    );
    let later = now + chrono::Duration::days(31);
    let pruned = db
        .run(move |c| refresh_tokens::prune(c, later))
        .await
        .unwrap();
    assert_eq!(i64::try_from(pruned).unwrap(), before, "{name}");

    let actions = audit_actions(&db).await;
    for action in [
        "auth.login",
        "auth.login_failed",
        "auth.refresh_reuse",
        "auth.logout",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{name}: {action} in {actions:?}"
        );
    }
}

fn sign(auth: &Auth, claims: &AccessClaims) -> String {
    auth.keys().sign(claims).unwrap()
}

/// A token whose header and signature are made by hand.
fn handmade(header: &Value, claims: &AccessClaims, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Tokens that must be refused, on one database.
async fn refused_tokens(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let state = common::state(db.clone());
    let world = World::new(state.clone()).await;
    let app = &world.app;
    let now = Utc::now().timestamp();
    let valid = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: world.dj_a.id.to_string(),
        sid: world.dj_a.session.to_string(),
        iat: now,
        exp: now + 600,
        jti: "t".into(),
    };
    // The baseline is accepted, so each refusal below is for its one difference.
    let good = sign(&state.auth, &valid);
    assert_eq!(
        me(app, &Credential::Bearer(good.clone())).await.status,
        StatusCode::OK,
        "{name}"
    );

    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let expired = AccessClaims {
        iat: now - 3600,
        exp: now - 1800,
        ..valid.clone()
    };
    cases.push(("expired", sign(&state.auth, &expired), "token_expired"));
    let forged_keys = Auth::new(
        &"a completely different secret, 32+ bytes".parse().unwrap(),
        RateLimits::default(),
    );
    cases.push(("forged", sign(&forged_keys, &valid), "invalid_token"));
    cases.push((
        "alg none",
        handmade(&json!({"alg": "none", "typ": "JWT"}), &valid, b""),
        "invalid_token",
    ));
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &valid,
        &jsonwebtoken::EncodingKey::from_secret(common::TEST_SECRET.as_bytes()),
    )
    .unwrap();
    cases.push(("HS512 with the right secret", hs512, "invalid_token"));
    let good_signature = URL_SAFE_NO_PAD
        .decode(good.rsplit('.').next().unwrap())
        .unwrap();
    cases.push((
        "RS256 header",
        handmade(
            &json!({"alg": "RS256", "typ": "JWT"}),
            &valid,
            &good_signature,
        ),
        "invalid_token",
    ));
    let tampered = AccessClaims {
        sub: world.admin.id.to_string(),
        ..valid.clone()
    };
    cases.push((
        "tampered payload",
        handmade(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &tampered,
            &good_signature,
        ),
        "invalid_token",
    ));
    let wrong_audience = AccessClaims {
        aud: "someone-else".into(),
        ..valid.clone()
    };
    cases.push((
        "wrong audience",
        sign(&state.auth, &wrong_audience),
        "invalid_token",
    ));
    cases.push(("garbage", "not.a.jwt".into(), "invalid_token"));
    for (what, token, code) in cases {
        let answer = me(app, &Credential::Bearer(token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}: {what}");
        assert_eq!(answer.code(), code, "{name}: {what}");
    }
    // Not a bearer scheme at all.
    let basic = me(
        app,
        &Credential::Authorization("Basic YWRtaW46YWRtaW4=".into()),
    )
    .await;
    assert_eq!(
        (basic.status, basic.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    // A disabled user's token, then a deleted user's token.
    let (manager_a, target) = (world.manager_a.id, world.target.id);
    db.run(move |c| {
        users::update(
            c,
            manager_a,
            &users::UserChanges {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .map(drop)
    })
    .await
    .unwrap();
    let disabled = me(app, &Credential::Bearer(world.manager_a.token.clone())).await;
    assert_eq!(
        (disabled.status, disabled.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{name}"
    );
    // … and its API keys with it.
    let key = me(app, &Credential::ApiKey(world.key_a.key.clone())).await;
    assert_eq!(key.status, StatusCode::UNAUTHORIZED, "{name}");
    let disabled_login = login(app, &world.manager_a.email, PASSWORD).await;
    assert_eq!(
        (disabled_login.status, disabled_login.code()),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    db.run(move |c| users::delete(c, target)).await.unwrap();
    let deleted = me(app, &Credential::Bearer(world.target.token.clone())).await;
    assert_eq!(
        (deleted.status, deleted.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{name}"
    );
}

/// A user imported with a bcrypt hash signs in, and the hash becomes argon2id.
async fn bcrypt_import(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let app = http::router(common::state(db.clone()));
    let imported = bcrypt::hash("imported from libretime", 4).unwrap();
    // The `$2y$` form PHP writes, as other systems export it.
    let imported = imported.replacen("$2b$", "$2y$", 1);
    let new = NewUser {
        email: "old.dj@example.org".into(),
        password_hash: imported.clone(),
        role: AccountRole::User,
        disabled: false,
    };
    let user = db.run(move |c| users::create(c, &new)).await.unwrap();
    let answer = login(&app, "old.dj@example.org", "imported from libretime").await;
    assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text);
    let id = user.id;
    let stored = db.run(move |c| users::password_hash(c, id)).await.unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{name}: {stored}"
    );
    // The new hash works, the old password still signs in, and a wrong one does not.
    let again = login(&app, "old.dj@example.org", "imported from libretime").await;
    assert_eq!(again.status, StatusCode::OK);
    let wrong = login(&app, "old.dj@example.org", "imported from libretimE").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let logins: Vec<Value> = db
        .run(|c| audit::list(c, None, Page::ALL))
        .await
        .unwrap()
        .0
        .into_iter()
        .filter(|e| e.action == "auth.login")
        .map(|e| e.details)
        .collect();
    // Newest first: the second sign-in did not rehash, the first did.
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[1]["rehashed"], true);
    assert_eq!(logins[0]["rehashed"], false);
}

/// API keys: created once, used, listed without the secret, revoked, expired.
async fn api_keys(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db.clone())).await;
    let app = &world.app;
    let manager = Credential::Bearer(world.manager_a.token.clone());
    let created = call(
        Method::POST,
        &format!("/api/v1/stations/{}/api-keys", world.a),
    )
    .auth(&manager)
    .json(&json!({"name": "  playout webhook ", "role": "dj"}))
    .send(app)
    .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{name}: {}",
        created.text
    );
    let key = created.body["key"].as_str().unwrap().to_owned();
    let prefix = created.body["api_key"]["prefix"].as_str().unwrap();
    assert!(key.starts_with(prefix) && prefix.starts_with("grk_"));
    assert_eq!(created.body["api_key"]["name"], "playout webhook");
    assert_eq!(created.body["api_key"]["last_used_at"], Value::Null);
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_owned();

    let as_key = Credential::ApiKey(key.clone());
    let station = call(Method::GET, &format!("/api/v1/stations/{}", world.a))
        .auth(&as_key)
        .send(app)
        .await;
    assert_eq!(station.status, StatusCode::OK, "{name}: {}", station.text);
    let other = call(Method::GET, &format!("/api/v1/stations/{}", world.b))
        .auth(&as_key)
        .send(app)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let whoami = me(app, &as_key).await;
    assert_eq!(whoami.body["credential"], "api_key");
    assert_eq!(whoami.body["api_key_id"], key_id.as_str());

    let listed = call(
        Method::GET,
        &format!("/api/v1/stations/{}/api-keys?limit=10", world.a),
    )
    .auth(&manager)
    .send(app)
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        !listed.text.contains(&key[prefix.len()..]),
        "the secret is never listed"
    );
    let entry = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap();
    assert!(
        entry["last_used_at"].is_string(),
        "{name}: last use recorded"
    );
    assert_eq!(listed.body["total"], 4);

    // Wrong secret with a real prefix, then revocation.
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        me(app, &Credential::ApiKey(wrong)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let revoke = call(
        Method::DELETE,
        &format!("/api/v1/stations/{}/api-keys/{key_id}", world.a),
    )
    .auth(&manager)
    .send(app)
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let refused = me(app, &as_key).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    // A key of station A cannot be revoked through station B.
    let cross = call(
        Method::DELETE,
        &format!("/api/v1/stations/{}/api-keys/{}", world.b, world.key_a.id),
    )
    .auth(&Credential::Bearer(world.admin.token.clone()))
    .send(app)
    .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND);

    // An expired key.
    let past = Utc::now().naive_utc() - chrono::Duration::minutes(1);
    let expired = api::key(
        &world.state,
        world.manager_a.id,
        world.a,
        StationRole::Dj,
        Some(past),
    )
    .await;
    assert_eq!(
        me(app, &Credential::ApiKey(expired.key)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A key never does more than its user: the manager becomes a DJ, the manager key too.
    let (a, manager_id) = (world.a, world.manager_a.id);
    db.run(move |c| grimnir_server::db::members::set(c, a, manager_id, StationRole::Dj).map(drop))
        .await
        .unwrap();
    let demoted = call(Method::PATCH, &format!("/api/v1/stations/{}", world.a))
        .auth(&Credential::ApiKey(world.key_a.key.clone()))
        .json(&json!({"active": false}))
        .send(app)
        .await;
    assert_eq!(demoted.status, StatusCode::FORBIDDEN, "{name}");

    let actions = audit_actions(&db).await;
    for action in ["api_key.create", "api_key.revoke"] {
        assert!(actions.iter().any(|a| a == action), "{name}: {action}");
    }
}

/// Users and members through the API: lists filtered by role, paging, audit, lock-out guard.
async fn users_and_stations(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db.clone())).await;
    let app = &world.app;
    let admin = Credential::Bearer(world.admin.token.clone());

    // Each sees the stations where it has a role; admins all of them.
    let list = |credential: Credential, query: &'static str| {
        let app = app.clone();
        async move {
            call(Method::GET, &format!("/api/v1/stations{query}"))
                .auth(&credential)
                .send(&app)
                .await
        }
    };
    let all = list(admin.clone(), "").await;
    assert_eq!(all.body["total"], 2, "{name}");
    let mine = list(Credential::Bearer(world.manager_b.token.clone()), "").await;
    assert_eq!(mine.body["total"], 1);
    assert_eq!(mine.body["items"][0]["id"], world.b.to_string());
    let paged = list(admin.clone(), "?limit=1&offset=1").await;
    assert_eq!(
        (
            paged.body["total"].clone(),
            paged.body["items"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    assert_eq!(
        (paged.body["limit"].clone(), paged.body["offset"].clone()),
        (json!(1), json!(1))
    );

    // Create a user, give it a role, and it signs in and sees its station.
    let created = call(Method::POST, "/api/v1/users")
        .auth(&admin)
        .json(&json!({"email": "New.DJ@Example.org", "password": "long enough password"}))
        .send(app)
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{name}: {}",
        created.text
    );
    assert_eq!(created.body["email"], "new.dj@example.org");
    assert_eq!(created.body["role"], "user");
    assert!(!created.text.contains("argon2"), "no hash in answers");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let duplicate = call(Method::POST, "/api/v1/users")
        .auth(&admin)
        .json(&json!({"email": "new.dj@example.org", "password": "long enough password"}))
        .send(app)
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code(), duplicate.field()),
        (StatusCode::CONFLICT, "conflict", Some("email"))
    );
    let member = call(
        Method::PUT,
        &format!("/api/v1/stations/{}/members/{id}", world.a),
    )
    .auth(&Credential::Bearer(world.manager_a.token.clone()))
    .json(&json!({"role": "dj"}))
    .send(app)
    .await;
    assert_eq!(member.status, StatusCode::OK, "{name}: {}", member.text);
    let signed_in = login(app, "new.dj@example.org", "long enough password").await;
    let theirs = list(bearer(&signed_in), "").await;
    assert_eq!(theirs.body["total"], 1);
    assert_eq!(theirs.body["items"][0]["id"], world.a.to_string());

    // Changing one's password ends one's sessions.
    let change = call(Method::PUT, "/api/v1/auth/password")
        .auth(&bearer(&signed_in))
        .json(&json!({"current_password": "wrong", "new_password": "a newer long password"}))
        .send(app)
        .await;
    assert_eq!(
        (change.status, change.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password"))
    );
    let change = call(Method::PUT, "/api/v1/auth/password")
        .auth(&bearer(&signed_in))
        .json(&json!({"current_password": "long enough password", "new_password": "a newer long password"}))
        .send(app)
        .await;
    assert_eq!(change.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(app, &bearer(&signed_in)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(app, "new.dj@example.org", "a newer long password")
            .await
            .status,
        StatusCode::OK
    );

    // The last enabled admin cannot be demoted, disabled or deleted.
    for (method, body) in [
        (Method::PATCH, Some(json!({"role": "user"}))),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let mut request =
            call(method.clone(), &format!("/api/v1/users/{}", world.admin.id)).auth(&admin);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let answer = request.send(app).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{name}: {method} {body:?}"
        );
    }
    assert_eq!(
        me(app, &admin).await.status,
        StatusCode::OK,
        "nothing changed"
    );

    let actions = audit_actions(&db).await;
    for action in ["user.create", "member.set", "user.password_change"] {
        assert!(actions.iter().any(|a| a == action), "{name}: {action}");
    }
    // A manager reads its station's audit log, with request ids.
    let log = call(
        Method::GET,
        &format!("/api/v1/audit?station_id={}", world.a),
    )
    .auth(&Credential::Bearer(world.manager_a.token.clone()))
    .header("x-request-id", "audit-test-1")
    .send(app)
    .await;
    assert_eq!(log.status, StatusCode::OK);
    let entries = log.body["items"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["station_id"] == world.a.to_string())
    );
    assert!(entries.iter().any(
        |e| e["action"] == "member.set" && e["actor_user_id"] == world.manager_a.id.to_string()
    ));
}

/// Refreshes racing with one token: one wins, the others are reuse and end the session; none
/// fails with a server error (SQLite included, whose writers wait for each other).
async fn refresh_race(backend: &api::Backend) {
    const RACERS: usize = 6;
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db.clone())).await;
    for round in 0..4 {
        let signed_in = login(&world.app, &world.dj_a.email, PASSWORD).await;
        let token = signed_in.body["refresh_token"].as_str().unwrap().to_owned();
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (app, token) = (world.app.clone(), token.clone());
                tokio::spawn(async move { refresh(&app, &token).await })
            })
            .collect();
        let mut answers = Vec::new();
        for racer in racers {
            answers.push(racer.await.unwrap());
        }
        let winners: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.status == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "{name} round {round}: {answers:#?}");
        // The first loser finds the token spent (reuse) and revokes the family; later ones may
        // find it revoked already.
        let mut reused = 0;
        for loser in answers.iter().filter(|a| a.status != StatusCode::OK) {
            assert_eq!(
                loser.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {}",
                loser.text
            );
            match loser.code() {
                "refresh_token_reused" => reused += 1,
                "invalid_token" => {}
                other => panic!("{name} round {round}: {other}: {}", loser.text),
            }
        }
        assert!(reused >= 1, "{name} round {round}: {answers:#?}");
        // The winner's new tokens died with the family.
        assert_eq!(
            me(&world.app, &bearer(winners[0])).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// The event stream answers only callers the policy lets watch, and only their stations.
async fn event_stream(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let (a, b) = (world.a.to_string(), world.b.to_string());
    let cases: Vec<(&str, Credential, Option<&String>, u16, &str)> = vec![
        ("anonymous", Credential::None, None, 401, "unauthenticated"),
        (
            "bad token",
            Credential::Bearer("x.y.z".into()),
            None,
            401,
            "invalid_token",
        ),
        (
            "admin, all",
            Credential::Bearer(world.admin.token.clone()),
            None,
            200,
            "",
        ),
        (
            "admin, B",
            Credential::Bearer(world.admin.token.clone()),
            Some(&b),
            200,
            "",
        ),
        (
            "DJ of A, own",
            Credential::Bearer(world.dj_a.token.clone()),
            None,
            200,
            "",
        ),
        (
            "DJ of A, A",
            Credential::Bearer(world.dj_a.token.clone()),
            Some(&a),
            200,
            "",
        ),
        (
            "DJ of A, B",
            Credential::Bearer(world.dj_a.token.clone()),
            Some(&b),
            403,
            "forbidden_station",
        ),
        (
            "manager of B, A",
            Credential::Bearer(world.manager_b.token.clone()),
            Some(&a),
            403,
            "forbidden_station",
        ),
        (
            "key of A, A",
            Credential::ApiKey(world.key_a_dj.key.clone()),
            Some(&a),
            200,
            "",
        ),
        (
            "key of A, B",
            Credential::ApiKey(world.key_a_dj.key.clone()),
            Some(&b),
            403,
            "forbidden_station",
        ),
    ];
    for (who, credential, station, status, code) in cases {
        let path = match station {
            Some(s) => format!("/api/v1/events/stream?station={s}"),
            None => "/api/v1/events/stream".to_owned(),
        };
        let answer = call(Method::GET, &path)
            .auth(&credential)
            .send_for_status(&world.app)
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.code()),
            (status, code),
            "{name}: {who}: {}",
            answer.text
        );
        if status == 200 {
            assert_eq!(answer.headers["content-type"], "text/event-stream", "{who}");
        }
    }
}

/// Browsers open the event stream with a ticket in the URL: good once, for the stations its
/// buyer may read, and no better than the credential it was bought with.
async fn event_tickets(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db.clone())).await;
    let app = &world.app;
    let buy = |credential: Credential| async move {
        let answer = call(Method::POST, "/api/v1/auth/ticket")
            .auth(&credential)
            .send(app)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text);
        assert_eq!(answer.body["expires_in"], 30, "{name}");
        answer.body["ticket"].as_str().unwrap().to_owned()
    };
    let open = |query: String, credential: Credential| async move {
        call(Method::GET, &format!("/api/v1/events/stream?{query}"))
            .auth(&credential)
            .send_for_status(app)
            .await
    };
    let status = |a: &Answer| (a.status.as_u16(), a.code().to_owned());
    let ok = (200, String::new());
    let refused = |code: &str| (401, code.to_owned());
    let dj = Credential::Bearer(world.dj_a.token.clone());
    let (a, b) = (world.a, world.b);

    // Nobody buys a ticket without signing in.
    let anonymous = call(Method::POST, "/api/v1/auth/ticket").send(app).await;
    assert_eq!(status(&anonymous), refused("unauthenticated"), "{name}");

    // A ticket opens the DJ's own stations, and its filters are read as if it were not there.
    let ticket = buy(dj.clone()).await;
    let answer = open(
        format!("station={a}&ticket={ticket}&types=now_playing"),
        Credential::None,
    )
    .await;
    assert_eq!(status(&answer), ok, "{name}: {}", answer.text);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    // Good once.
    let again = open(format!("ticket={ticket}"), Credential::None).await;
    assert_eq!(status(&again), refused("invalid_token"), "{name}");
    assert!(again.text.contains("used before"), "{name}: {}", again.text);
    // Good once across servers sharing the database: another server (its own `Auth`, the same
    // secret) refuses the ticket this one took, and takes one this one has not seen, which
    // this one then refuses.
    let elsewhere = http::router(common::state(db));
    let stream = |ticket: &str| format!("/api/v1/events/stream?ticket={ticket}");
    let there = call(Method::GET, &stream(&ticket))
        .send_for_status(&elsewhere)
        .await;
    assert_eq!(
        status(&there),
        refused("invalid_token"),
        "{name}: {}",
        there.text
    );
    let fresh = buy(dj.clone()).await;
    let there = call(Method::GET, &stream(&fresh))
        .send_for_status(&elsewhere)
        .await;
    assert_eq!(status(&there), ok, "{name}: {}", there.text);
    let here = open(format!("ticket={fresh}"), Credential::None).await;
    assert_eq!(status(&here), refused("invalid_token"), "{name}");
    // No further than its buyer may see.
    let ticket = buy(dj.clone()).await;
    let other = open(format!("ticket={ticket}&station={b}"), Credential::None).await;
    assert_eq!(
        status(&other),
        (403, "forbidden_station".to_owned()),
        "{name}"
    );
    // A header wins over a ticket, which is still taken out of the filters.
    let answer = open(format!("ticket=whatever&station={a}"), dj.clone()).await;
    assert_eq!(status(&answer), ok, "{name}: {}", answer.text);

    // Not an access token, nor an access token a ticket.
    let ticket = buy(dj.clone()).await;
    let as_bearer = me(app, &Credential::Bearer(ticket.clone())).await;
    assert_eq!(status(&as_bearer), refused("invalid_token"), "{name}");
    let token_as_ticket = open(format!("ticket={}", world.dj_a.token), Credential::None).await;
    assert_eq!(status(&token_as_ticket), refused("invalid_token"), "{name}");
    let garbage = open("ticket=x.y.z".to_owned(), Credential::None).await;
    assert_eq!(status(&garbage), refused("invalid_token"), "{name}");

    // Bought with an API key, it is the key's scope; a revoked key's ticket is refused.
    let key = Credential::ApiKey(world.spare_key_a.key.clone());
    let ticket = buy(key.clone()).await;
    let answer = open(format!("ticket={ticket}&station={a}"), Credential::None).await;
    assert_eq!(status(&answer), ok, "{name}: {}", answer.text);
    let ticket = buy(key).await;
    let revoke = call(
        Method::DELETE,
        &format!("/api/v1/stations/{a}/api-keys/{}", world.spare_key_a.id),
    )
    .auth(&Credential::Bearer(world.manager_a.token.clone()))
    .send(app)
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{name}");
    let answer = open(format!("ticket={ticket}"), Credential::None).await;
    assert_eq!(status(&answer), refused("invalid_token"), "{name}");

    // A ticket outlives neither its session: signing out refuses the tickets bought in it.
    let ticket = buy(dj).await;
    let out = call(Method::POST, "/api/v1/auth/logout")
        .json(&json!({"refresh_token": world.refresh_dj_a}))
        .send(app)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{name}");
    let answer = open(format!("ticket={ticket}"), Credential::None).await;
    assert_eq!(
        status(&answer),
        refused("invalid_token"),
        "{name}: {}",
        answer.text
    );
}

/// Signed-in principals are cached briefly: a change made through the server applies to the
/// next request, one made behind its back (another instance) within `PRINCIPAL_TTL`.
async fn cached_principals(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let station = |s: grimnir_server::db::stations::StationId| format!("/api/v1/stations/{s}");
    let get = |credential: Credential, path: String| {
        let app = world.app.clone();
        async move {
            api::call(Method::GET, &path)
                .auth(&credential)
                .send(&app)
                .await
        }
    };
    let dj = Credential::Bearer(world.dj_a.token.clone());
    // Twice: the second answer comes from the cache.
    for _ in 0..2 {
        assert_eq!(
            get(dj.clone(), station(world.a)).await.status,
            200,
            "{name}"
        );
    }
    // Taken off the station through the API: refused on the very next request.
    let removed = api::call(
        Method::DELETE,
        &format!("/api/v1/stations/{}/members/{}", world.a, world.dj_a.id),
    )
    .auth(&Credential::Bearer(world.admin.token.clone()))
    .send(&world.app)
    .await;
    assert_eq!(removed.status, 204, "{name}: {}", removed.text);
    assert_eq!(
        get(dj.clone(), station(world.a)).await.status,
        403,
        "{name}"
    );

    // Behind the server's back, as another instance sharing the database would.
    let manager = Credential::Bearer(world.manager_b.token.clone());
    assert_eq!(
        get(manager.clone(), station(world.b)).await.status,
        200,
        "{name}"
    );
    let (b, user) = (world.b.to_string(), world.manager_b.id.to_string());
    world
        .state
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use grimnir_server::db::schema::station_users;
            diesel::delete(
                station_users::table
                    .filter(station_users::station_id.eq(&b))
                    .filter(station_users::user_id.eq(&user)),
            )
            .execute(c)
            .map_err(grimnir_server::db::StorageError::from)
        })
        .await
        .unwrap();
    tokio::time::sleep(grimnir_server::auth::PRINCIPAL_TTL + std::time::Duration::from_millis(300))
        .await;
    assert_eq!(get(manager, station(world.b)).await.status, 403, "{name}");

    // Signing out ends the session's access tokens at once, cached or not.
    let manager_a = Credential::Bearer(world.manager_a.token.clone());
    assert_eq!(
        get(manager_a.clone(), station(world.a)).await.status,
        200,
        "{name}"
    );
    let out = api::call(Method::POST, "/api/v1/auth/logout")
        .json(&serde_json::json!({"refresh_token": world.refresh_dj_a}))
        .send(&world.app)
        .await;
    assert_eq!(out.status, 204, "{name}");
    let dj_me = get(dj, "/api/v1/auth/me".into()).await;
    assert_eq!(dj_me.status, 401, "{name}: {}", dj_me.text);
}

macro_rules! on_every_backend {
    ($($test:ident => $body:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            for backend in api::backends() {
                $body(&backend).await;
            }
        }
    )*};
}

on_every_backend! {
    sign_in_refresh_rotation_reuse_detection_and_sign_out => sessions,
    expired_forged_wrong_algorithm_tampered_and_revoked_tokens_are_refused => refused_tokens,
    bcrypt_imported_users_sign_in_and_are_rehashed => bcrypt_import,
    api_keys_are_shown_once_used_listed_revoked_and_expire => api_keys,
    users_members_and_station_lists => users_and_stations,
    racing_refreshes_cannot_both_win => refresh_race,
    the_event_stream_is_scoped_by_the_policy => event_stream,
    principals_are_cached_briefly_and_dropped_on_change => cached_principals,
    event_tickets_are_good_once_and_no_better_than_their_credential => event_tickets,
    audit_entries_past_their_retention_are_pruned_and_the_prune_recorded => audit_retention,
    spent_tickets_are_refused_until_they_expire_then_pruned => spent_ticket_rows,
}

async fn spent_ticket_rows(backend: &api::Backend) {
    use grimnir_server::db::spent_tickets;
    let name = backend.name;
    let db = api::open(backend).await;
    let now = Utc::now();
    let expires = now + chrono::Duration::seconds(30);
    let jti = uuid::Uuid::new_v4().to_string();
    let spend = |jti: String| {
        let db = db.clone();
        async move {
            db.run(move |c| spent_tickets::spend(c, &jti, expires))
                .await
                .unwrap()
        }
    };
    assert!(spend(jti.clone()).await, "{name}: the first time");
    assert!(!spend(jti.clone()).await, "{name}: the second time");
    assert!(!spend(String::new()).await, "{name}: an empty id");
    assert!(!spend("x".repeat(37)).await, "{name}: an id no ticket has");
    let prune = |before| {
        let db = db.clone();
        async move {
            db.run(move |c| spent_tickets::prune(c, before))
                .await
                .unwrap()
        }
    };
    assert_eq!(prune(now).await, 0, "{name}: not expired yet");
    assert!(!spend(jti.clone()).await, "{name}: still spent");
    assert_eq!(
        prune(expires + chrono::Duration::seconds(1)).await,
        1,
        "{name}"
    );
}

/// `audit::prune` deletes what is older than its cutoff, in batches, keeps the rest, and says
/// in the log itself that it did.
async fn audit_retention(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let old = audit::PRUNE_BATCH + 100;
    db.run(move |c| {
        c.transaction(|c| {
            for n in 0..old {
                audit::record(
                    c,
                    &audit::Entry::new(audit::Actor::System, "test.old", "thing").target(n),
                )?;
            }
            // Moved into the past, a day apart from the next step's cutoff either way.
            diesel::update(schema::audit_log::table)
                .set(
                    schema::audit_log::occurred_at
                        .eq((Utc::now() - chrono::Duration::days(40)).naive_utc()),
                )
                .execute(c)?;
            for n in 0..3 {
                audit::record(
                    c,
                    &audit::Entry::new(audit::Actor::System, "test.recent", "thing").target(n),
                )?;
            }
            Ok::<_, grimnir_server::db::StorageError>(())
        })
    })
    .await
    .unwrap();
    let cutoff = Utc::now() - chrono::Duration::days(30);
    let deleted = db.run(move |c| audit::prune(c, cutoff)).await.unwrap();
    assert_eq!(deleted, old, "{name}");
    let (left, total) = db.run(|c| audit::list(c, None, Page::ALL)).await.unwrap();
    assert_eq!(total, 4, "{name}: {left:?}");
    let actions: Vec<&str> = left.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "test.recent").count(),
        3,
        "{name}"
    );
    let pruned = left.iter().find(|e| e.action == "audit.prune").unwrap();
    assert_eq!(pruned.details["deleted"], old, "{name}");
    assert_eq!(
        pruned.details["before"],
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    // Nothing more to delete: nothing deleted, nothing recorded.
    let again = db.run(move |c| audit::prune(c, cutoff)).await.unwrap();
    assert_eq!(again, 0, "{name}");
    let (_, total) = db.run(|c| audit::list(c, None, Page::ALL)).await.unwrap();
    assert_eq!(total, 4, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let backends = api::backends();
    let db = api::open(&backends[0]).await;
    let limits = RateLimits {
        login_per_address: Quota {
            burst: 3,
            period: Duration::from_secs(60),
        },
        login_per_account: Quota {
            burst: 5,
            period: Duration::from_secs(60),
        },
        public_per_address: Quota::per_minute(1000),
        per_user: Quota {
            burst: 2,
            period: Duration::from_secs(60),
        },
    };
    let state = common::with_auth(db, common::auth_with(limits));
    let world = World::new(state).await;
    let app = &world.app;
    let from = |n: u8| SocketAddr::from(([10, 0, 0, n], 40000));
    let attempt = |addr: SocketAddr, email: String| {
        let app = app.clone();
        async move {
            call(Method::POST, "/api/v1/auth/login")
                .peer(addr)
                .json(&json!({"email": email, "password": "wrong password"}))
                .send(&app)
                .await
        }
    };
    // Per address: three attempts, then 429.
    for _ in 0..3 {
        let a = attempt(from(1), world.dj_a.email.clone()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let limited = attempt(from(1), world.admin.email.clone()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another address is not limited…
    assert_eq!(
        attempt(from(2), world.admin.email.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    // …but one account, from many addresses, is: dj_a had 3 attempts, 2 more are allowed.
    for n in 3..5 {
        assert_eq!(
            attempt(from(n), world.dj_a.email.clone()).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let account = attempt(from(9), world.dj_a.email.to_uppercase()).await;
    assert_eq!(account.status, StatusCode::TOO_MANY_REQUESTS);

    // Per user: two authenticated requests, then 429.
    let dj = Credential::Bearer(world.dj_a.token.clone());
    assert_eq!(me(app, &dj).await.status, StatusCode::OK);
    assert_eq!(me(app, &dj).await.status, StatusCode::OK);
    let user_limited = me(app, &dj).await;
    assert_eq!(user_limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(user_limited.headers.contains_key("retry-after"));
    // Others are not affected.
    assert_eq!(
        me(app, &Credential::Bearer(world.admin.token.clone()))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_are_limited_per_address() {
    let backends = api::backends();
    let db = api::open(&backends[0]).await;
    let limits = RateLimits {
        public_per_address: Quota {
            burst: 4,
            period: Duration::from_secs(60),
        },
        ..common::generous_limits()
    };
    let app = http::router(common::with_auth(db, common::auth_with(limits)));
    let addr = SocketAddr::from(([192, 0, 2, 7], 5000));
    let paths = [
        (Method::POST, "/api/v1/auth/refresh"),
        (Method::POST, "/api/v1/auth/logout"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::GET, "/api/v1/docs/"),
    ];
    for (method, path) in &paths {
        let answer = call(method.clone(), path)
            .peer(addr)
            .json(&json!({"refresh_token": "grt_x"}))
            .send(&app)
            .await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    for (method, path) in &paths {
        let answer = call(method.clone(), path)
            .peer(addr)
            .json(&json!({"refresh_token": "grt_x"}))
            .send(&app)
            .await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(answer.code(), "rate_limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_limits_and_audit_use_the_forwarded_address() {
    let backends = api::backends();
    let db = api::open(&backends[0]).await;
    let limits = RateLimits {
        login_per_address: Quota {
            burst: 2,
            period: Duration::from_secs(60),
        },
        ..common::generous_limits()
    };
    let proxy = SocketAddr::from(([127, 0, 0, 1], 50000));
    let auth = Auth::behind_proxies(
        &common::TEST_SECRET.parse().unwrap(),
        limits,
        vec![proxy.ip().into()],
    );
    let world = World::new(common::with_auth(db.clone(), auth)).await;
    let attempt = |peer: SocketAddr, forwarded: &'static str| {
        let app = world.app.clone();
        let email = world.dj_a.email.clone();
        async move {
            call(Method::POST, "/api/v1/auth/login")
                .peer(peer)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"email": email, "password": "wrong password"}))
                .send(&app)
                .await
                .status
        }
    };
    // Two clients behind the proxy have a bucket each.
    for _ in 0..2 {
        assert_eq!(
            attempt(proxy, "203.0.113.1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt(proxy, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt(proxy, "203.0.113.2").await,
        StatusCode::UNAUTHORIZED
    );
    // A client that is not the proxy cannot choose its bucket with the header.
    let direct = SocketAddr::from(([198, 51, 100, 5], 1234));
    for forwarded in ["192.0.2.1", "192.0.2.2"] {
        assert_eq!(attempt(direct, forwarded).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt(direct, "192.0.2.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The audit log records the forwarded address.
    let addresses: Vec<Option<String>> = db
        .run(|c| audit::list(c, None, Page::ALL))
        .await
        .unwrap()
        .0
        .into_iter()
        .filter(|e| e.action == "auth.login_failed")
        .map(|e| e.remote_addr)
        .collect();
    assert!(
        addresses.contains(&Some("203.0.113.1".into())),
        "{addresses:?}"
    );
    assert!(
        addresses.contains(&Some("198.51.100.5".into())),
        "{addresses:?}"
    );
    assert!(
        !addresses.contains(&Some("192.0.2.1".into())),
        "{addresses:?}"
    );
}
