//! Where each field of a YAML document is: field paths (as `serde_path_to_error` writes them,
//! `mounts[0].outputs[1].bitrate_kbps`) mapped to the line and column of their key.
//!
//! serde reports *which* field is wrong, but a value refused after it was read (a time zone
//! that does not exist, a bitrate out of range) has no position of its own. A second, cheap
//! pass over the parser's events finds it, so every error can point at its line.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// 1-based line and column of a field's key (or of a sequence item's first character).
pub(crate) type Position = (usize, usize);

/// The positions of every mapping key and sequence item of `text`'s first document. Text that
/// does not parse gives the positions found before the error.
pub(crate) fn index(text: &str) -> HashMap<String, Position> {
    enum Frame {
        /// A mapping: the path of the key whose value comes next, if a key was just read.
        Mapping { path: String, key: Option<String> },
        /// A sequence: its path and the index of the next item.
        Sequence { path: String, next: usize },
    }
    let mut positions = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The path of the node that comes next, and whether it is a mapping key.
    let next_path =
        |stack: &mut Vec<Frame>, positions: &mut HashMap<String, Position>, at| match stack
            .last_mut()
        {
            None => Some(String::new()),
            Some(Frame::Mapping { key, .. }) => key.take(),
            Some(Frame::Sequence { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                positions.insert(item.clone(), at);
                Some(item)
            }
        };
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let at = (span.start.line(), span.start.col() + 1);
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping {
                    path,
                    key: key @ None,
                }) = stack.last_mut()
                {
                    // A key: the value that follows lives at `path.key`.
                    let full = if path.is_empty() {
                        value.to_string()
                    } else {
                        format!("{path}.{value}")
                    };
                    positions.insert(full.clone(), at);
                    *key = Some(full);
                } else {
                    next_path(&mut stack, &mut positions, at);
                }
            }
            Event::MappingStart(..) => {
                let path = next_path(&mut stack, &mut positions, at).unwrap_or_default();
                stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = next_path(&mut stack, &mut positions, at).unwrap_or_default();
                stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Alias(_) => {
                next_path(&mut stack, &mut positions, at);
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    positions
}

/// The position of `field`, or of the nearest enclosing field that has one (`a.b[2].c` falls
/// back to `a.b[2]`, then `a.b`, then `a`).
pub(crate) fn locate(positions: &HashMap<String, Position>, field: &str) -> Option<Position> {
    let mut path = field;
    loop {
        if let Some(at) = positions.get(path) {
            return Some(*at);
        }
        let cut = path.rfind(['.', '['])?;
        path = &path[..cut];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
station:
  name: WGMR
  timezone: Europe/Oslo
mounts:
  - id: main
    outputs:
      - type: icecast
        bitrate_kbps: 128
      - type: hls
        segment_duration_sec: 4
  - id: second
dsp_graph:
  nodes: [{type: limiter, config: {threshold_db: -1}}]
";

    #[test]
    fn keys_and_items_are_found_at_their_lines() {
        let p = index(DOC);
        assert_eq!(p["station"], (1, 1));
        assert_eq!(p["station.timezone"], (3, 3));
        assert_eq!(p["mounts[0]"], (5, 5));
        assert_eq!(p["mounts[0].id"], (5, 5));
        assert_eq!(p["mounts[0].outputs[1].segment_duration_sec"], (10, 9));
        assert_eq!(p["mounts[1].id"], (11, 5));
        assert_eq!(p["dsp_graph.nodes[0].config.threshold_db"].0, 13);
    }

    #[test]
    fn a_missing_field_falls_back_to_its_parent() {
        let p = index(DOC);
        assert_eq!(
            locate(&p, "mounts[0].outputs[0].format"),
            Some((7, 9)),
            "the output item"
        );
        assert_eq!(locate(&p, "mounts[7].id"), Some((4, 1)), "the sequence");
        assert_eq!(locate(&p, "nothing"), None);
    }

    #[test]
    fn broken_text_gives_what_came_before_the_error() {
        let p = index("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(p.get("a"), Some(&(1, 1)));
        assert_eq!(p.get("c"), None);
    }
}
