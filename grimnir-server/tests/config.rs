//! Configuration from a real file and an environment given as pairs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;

use grimnir_server::config::{Config, ConfigError, EnvVars, Environment, LogFormat};
use grimnir_server::db::Backend;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const FILE: &str = "\
# Production settings
environment: production
data_dir: /var/lib/grimnir
http:
  listen: 0.0.0.0:8080
database:
  url: postgres://grimnir:secret@db.internal/grimnir
  pool_size: 16
log:
  level: info,grimnir_server=debug
";

#[test]
fn the_file_sets_what_the_environment_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "grimnir.yaml", FILE);
    let env = EnvVars::from_pairs([("GRIMNIR_HTTP_LISTEN", "127.0.0.1:9090")]);
    let (config, warnings) = Config::load(Some(&path), &env).unwrap();
    assert!(warnings.is_empty());
    // From the environment, over the file.
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:9090");
    // From the file.
    assert_eq!(config.environment, Environment::Production);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level.as_str(), "info,grimnir_server=debug");
    assert_eq!(config.database.url.backend(), Backend::Postgres);
    assert_eq!(config.database.pool_size, 16);
    assert_eq!(config.data_dir, Path::new("/var/lib/grimnir"));
    // Defaults for the rest.
    assert_eq!(config.database.connect_timeout.as_secs(), 5);
    assert_eq!(config.file.as_deref(), Some(path.as_path()));
    // The password does not show when the configuration is printed.
    // (The word alone appears: `auth.jwt_secret` is a field.)
    assert!(!format!("{config:?}").contains(":secret@"));
}

#[test]
fn rlm_aliases_set_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "radio.yaml", FILE);
    let env = EnvVars::from_pairs([
        ("RLM_CONFIG", path.to_str().unwrap()),
        ("RLM_DATABASE_URL", "mariadb://root@127.0.0.1/radio"),
        ("RLM_ENV", "development"),
        ("RLM_DATABASE_POOL_SIZE", "3"),
    ]);
    let (config, _) = Config::load(None, &env).unwrap();
    assert_eq!(
        config.file.as_deref(),
        Some(path.as_path()),
        "RLM_CONFIG names the file"
    );
    assert_eq!(config.database.url.backend(), Backend::Mysql);
    assert_eq!(config.database.pool_size, 3);
    assert_eq!(config.environment, Environment::Development);
    // The file's listen address still applies.
    assert_eq!(config.http.listen.port(), 8080);
}

#[test]
fn a_bad_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        "environment: production\ndatabase:\n  url: postgres://h/db\n  pool_size: 1000\n",
    );
    let err = Config::load(Some(&path), &EnvVars::default()).unwrap_err();
    match &err {
        ConfigError::File {
            path: p,
            line,
            field,
            message,
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(*line, Some(4));
            assert_eq!(field, "database.pool_size");
            assert_eq!(message, "1000 is not between 1 and 128");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:4:", path.display())),
        "{text}"
    );
    assert!(
        text.contains("database.pool_size: 1000 is not between 1 and 128"),
        "{text}"
    );
}

#[test]
fn a_bad_database_url_in_the_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", "database:\n  url: oracle://x/y\n");
    let err = Config::load(Some(&path), &EnvVars::default()).unwrap_err();
    let ConfigError::File {
        line,
        field,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*line, field.as_str()), (Some(2), "database.url"));
    assert!(
        message.starts_with("unknown database URL scheme"),
        "{message}"
    );
}

#[test]
fn yaml_syntax_errors_carry_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "broken.yaml", "http:\n  listen: [127.0.0.1\n");
    let err = Config::load(Some(&path), &EnvVars::default()).unwrap_err();
    let ConfigError::File { line, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(line.is_some(), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let env = EnvVars::from_pairs([("GRIMNIR_CONFIG", "/nonexistent/grimnir.yaml")]);
    let err = Config::load(None, &env).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/grimnir.yaml"),
        "{err}"
    );
}
