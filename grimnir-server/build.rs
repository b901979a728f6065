//! Rebuilds the crate when a migration is added: `embed_migrations!` reads the directories at
//! compile time, and cargo does not watch them on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
