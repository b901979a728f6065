#!/usr/bin/env bash
# Installs what `make test` and `make run` need, and only what is missing.
# Target: a fresh Debian 12 / Ubuntu machine with a rustup toolchain.
# Quiet and quick when everything is already present.
set -euo pipefail

# Debian packages the build and tests need: ffmpeg is the independent loudness judge and
# listener; GStreamer 1.22 (headers for gstreamer-rs, the plugins for decoding every input
# format and encoding every output format) runs grimnir-engine; icecast2 is the real server the
# engine's streaming tests send to; openssl makes the certificates of the engine's TLS test;
# grimnir-server links the SQLite, PostgreSQL and MySQL/MariaDB client libraries through diesel.
DEB_PACKAGES="build-essential pkg-config ffmpeg \
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav icecast2 openssl \
    libsqlite3-dev libpq-dev default-libmysqlclient-dev"

# mdbook: the book's build is checked against this minor version.
MDBOOK_SERIES="0.5"

log() { printf 'ensure-deps: %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ensure_rust_components() {
    if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
        return 0
    fi
    log "adding rustup components: rustfmt clippy"
    rustup component add rustfmt clippy
}

ensure_mdbook() {
    local version
    # `mdbook --version` prints e.g. "mdbook v0.5.4".
    version="$(mdbook --version 2>/dev/null | awk '{print $2}' | sed 's/^v//')" || version=""
    case "$version" in
        "$MDBOOK_SERIES".*) return 0 ;;
    esac

    log "installing mdbook ${MDBOOK_SERIES} (found: ${version:-none}); this compiles from source"
    # Only the `search` feature: the `serve` and `watch` features pull in tokio, axum and
    # notify, which roughly double the compile time and are not needed to build the book.
    cargo install --locked mdbook --version "^${MDBOOK_SERIES}" \
        --no-default-features --features search
}

ensure_deb_packages $DEB_PACKAGES
ensure_rust_components
ensure_mdbook
