//! Station and library files as text, through parsing, validation, `Planner::new` and a plan.
//!
//! Input layout (a 6-byte header, then the two documents):
//!
//! | bytes  | meaning                                                             |
//! |--------|---------------------------------------------------------------------|
//! | 0      | bit 0: the station is JSON (else YAML); bit 1: the library is JSON  |
//! | 1..3   | big-endian u16: hours after 2026-01-01T00:00Z (modulo 8760)         |
//! | 3      | minutes added to that (modulo 60)                                   |
//! | 4      | window length: 1 + (byte modulo 6) hours                            |
//! | 5      | plan seed                                                           |
//! | 6..    | station document, one 0x00 byte, library document                   |
//!
//! Either document that is not UTF-8, does not parse or does not validate ends the run: refusing
//! bad files is the planner's job. A panic anywhere, or a broken timeline invariant, is a finding.
//! Run an input with `GRIMNIR_FUZZ_VERBOSE=1` set to see why it stopped early.

#![no_main]

use grimnir_fuzz::{MAX_HOURS, plan_and_check, skipped, start_in_2026};
use grimnir_planner::chrono::TimeDelta;
use grimnir_planner::{Format, Library, Planner, StationConfig};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 6;

fuzz_target!(|data: &[u8]| {
    let Some((header, documents)) = data.split_first_chunk::<HEADER>() else {
        return;
    };
    let Some(nul) = documents.iter().position(|&b| b == 0) else {
        return skipped("split", "no 0x00 between the station and the library");
    };
    let station = match std::str::from_utf8(&documents[..nul]) {
        Ok(text) => text,
        Err(e) => return skipped("station", e),
    };
    let library = match std::str::from_utf8(&documents[nul + 1..]) {
        Ok(text) => text,
        Err(e) => return skipped("library", e),
    };
    let format = |json: bool| if json { Format::Json } else { Format::Yaml };
    let config = match StationConfig::from_str_as(station, format(header[0] & 1 != 0)) {
        Ok(config) => config,
        Err(e) => return skipped("station", e),
    };
    let library = match Library::from_str_as(library, format(header[0] & 2 != 0)) {
        Ok(library) => library,
        Err(e) => return skipped("library", e),
    };
    let planner = match Planner::new(config, library) {
        Ok(planner) => planner,
        Err(e) => return skipped("Planner::new", e),
    };

    let hours = i64::from(u16::from_be_bytes([header[1], header[2]])) % (365 * 24);
    let start =
        start_in_2026(TimeDelta::hours(hours) + TimeDelta::minutes(i64::from(header[3] % 60)));
    let window_hours = 1 + u32::from(header[4]) % MAX_HOURS;
    plan_and_check(&planner, start, window_hours, u64::from(header[5]));
});
