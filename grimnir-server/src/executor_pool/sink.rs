//! Where an executor's commands go: the seam between the executor pool and the media engine.

use std::collections::VecDeque;
use std::sync::Mutex;

use grimnir_priority::Command;

use crate::db::stations::StationId;

/// Takes the commands a station's executor decided and gets them to its media engine.
///
/// **API Boundary**: the executor pool calls [`CommandSink::deliver`] from the station's task
/// after every step that produced commands, in the order they were decided. An implementation
/// must not block (an engine client queues the commands for its own connection task) and must
/// not panic on an unreachable engine: playout decisions go on regardless, and the executor
/// learns of a failed engine through `Event::EngineFailed`.
pub trait CommandSink: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `commands` for `station`'s engine.
    fn deliver(&self, station: StationId, commands: &[Command]);
}

/// How many commands a [`RecordingSink`] keeps.
pub const RECORDING_CAPACITY: usize = 4096;

/// A sink for when no media engine is connected: it logs every command with `tracing` and keeps
/// the last [`RECORDING_CAPACITY`] of them, so tests and operators can see what would have been
/// sent.
#[derive(Debug, Default)]
pub struct RecordingSink {
    sent: Mutex<VecDeque<(StationId, Command)>>,
}

impl RecordingSink {
    /// An empty recording.
    pub fn new() -> Self {
        RecordingSink::default()
    }

    /// The commands recorded for `station`, oldest first.
    pub fn commands(&self, station: StationId) -> Vec<Command> {
        self.sent
            .lock()
            .map(|sent| {
                sent.iter()
                    .filter(|(s, _)| *s == station)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl CommandSink for RecordingSink {
    fn deliver(&self, station: StationId, commands: &[Command]) {
        for command in commands {
            tracing::info!(
                station_id = %station,
                command = command.name(),
                at = %command.at(),
                detail = ?command,
                "engine command (no engine connected)"
            );
        }
        // A poisoned lock only means another thread panicked while recording; the recording is
        // a convenience, so it is simply skipped then.
        if let Ok(mut sent) = self.sent.lock() {
            for command in commands {
                if sent.len() == RECORDING_CAPACITY {
                    sent.pop_front();
                }
                sent.push_back((station, command.clone()));
            }
        }
    }
}
