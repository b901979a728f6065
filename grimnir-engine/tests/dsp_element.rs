//! The `grimnirdsp` element in a real GStreamer pipeline: appsrc → grimnirdsp → appsink.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use gst::prelude::*;

const RATE: u32 = 48_000;

/// A stereo 1 kHz sine with peaks at `db` dBFS, `seconds` long.
fn sine(db: f64, seconds: f64) -> Vec<f32> {
    let amp = 10f64.powf(db / 20.0);
    (0..(seconds * f64::from(RATE)) as usize)
        .flat_map(|i| {
            let v = (amp * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(RATE)).sin())
                as f32;
            [v, v]
        })
        .collect()
}

fn rms_db(x: &[f32]) -> f64 {
    let ms = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64;
    10.0 * ms.log10()
}

struct Run {
    output: Vec<f32>,
    messages: Vec<gst::Message>,
}

/// Pushes `input` in 1024-frame buffers through an element set up by `setup`, sending `event`
/// first when given, and collects the output and every bus message.
fn run(setup: impl FnOnce(&gst::Element), event: Option<gst::Event>, input: &[f32]) -> Run {
    grimnir_engine::init().unwrap();
    let caps = gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::F32le)
        .rate(RATE as i32)
        .channels(2)
        .build();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    let dsp = gst::ElementFactory::make("grimnirdsp").build().unwrap();
    let sink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([src.upcast_ref(), &dsp, sink.upcast_ref()])
        .unwrap();
    gst::Element::link_many([src.upcast_ref(), &dsp, sink.upcast_ref()]).unwrap();
    // In the pipeline, so that what the element posts reaches the bus.
    setup(&dsp);
    pipeline.set_state(gst::State::Playing).unwrap();
    if let Some(event) = event {
        assert!(src.send_event(event));
    }
    let producer = {
        let input = input.to_vec();
        let src = src.clone();
        std::thread::spawn(move || {
            for (k, block) in input.chunks(2048).enumerate() {
                let bytes: Vec<u8> = block.iter().flat_map(|x| x.to_le_bytes()).collect();
                let mut buf = gst::Buffer::from_mut_slice(bytes);
                let b = buf.get_mut().unwrap();
                b.set_pts(gst::ClockTime::SECOND.mul_div_floor(k as u64 * 1024, u64::from(RATE)));
                src.push_buffer(buf).unwrap();
            }
            src.end_of_stream().unwrap();
        })
    };
    let mut output = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        output.extend(
            map.as_slice()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    producer.join().unwrap();
    let bus = pipeline.bus().unwrap();
    let messages: Vec<gst::Message> = bus.iter().collect();
    pipeline.set_state(gst::State::Null).unwrap();
    Run { output, messages }
}

fn element_messages<'a>(
    run: &'a Run,
    name: &'a str,
) -> impl Iterator<Item = &'a gst::StructureRef> {
    run.messages.iter().filter_map(move |m| match m.view() {
        gst::MessageView::Element(e) => e.structure().filter(|s| s.name() == name),
        _ => None,
    })
}

#[test]
fn the_limiter_holds_its_ceiling_inside_gstreamer_and_meters_are_posted() {
    let input = sine(-1.0, 3.0);
    let run = run(
        |e| {
            e.set_property(
                "graph",
                "nodes:\n  - type: limiter\n    config: { threshold_db: -6.0 }\n",
            )
        },
        None,
        &input,
    );
    assert_eq!(run.output.len(), input.len(), "every frame comes out");
    let peak = run.output.iter().fold(0f32, |m, x| m.max(x.abs()));
    let peak_db = 20.0 * f64::from(peak).log10();
    assert!(
        peak_db <= -6.0 + 1e-4,
        "peak {peak_db:.3} dBFS over a -6 dB ceiling"
    );
    assert!(
        peak_db > -7.0,
        "the limiter barely touched it: {peak_db:.3}"
    );
    let meters: Vec<_> = element_messages(&run, grimnir_engine::METER_MESSAGE).collect();
    assert!(
        meters.len() >= 2,
        "one meter message a second: {}",
        meters.len()
    );
    let last = meters.last().unwrap();
    let true_peak = last.get::<f64>("true-peak").unwrap();
    assert!((-6.6..=-5.9).contains(&true_peak), "true peak {true_peak}");
    let momentary = last.get::<f64>("momentary").unwrap();
    assert!(
        momentary.is_finite() && momentary < -6.0,
        "momentary {momentary}"
    );
    assert!(last.get::<u64>("stream-time").unwrap() >= 2_000_000_000);
}

#[test]
fn a_track_event_sets_the_normalizer_gain_for_what_follows() {
    let input = sine(-20.0, 2.0);
    let graph = "nodes:\n  - type: loudness_normalize\n    config: { target_lufs: -16.0 }\n";
    // A sine at -20 dBFS peak reads about -23.7 LUFS; say the track measured -24: +8 dB.
    let run = run(
        |e| e.set_property("graph", graph),
        Some(grimnir_engine::track_loudness_event(Some(-24.0))),
        &input,
    );
    let tail = &run.output[run.output.len() / 2..];
    let gain = rms_db(tail) - rms_db(&input[input.len() / 2..]);
    assert!((gain - 8.0).abs() < 0.05, "gain {gain:.3} dB, want +8");
}

#[test]
fn a_bad_graph_is_refused_with_a_warning_and_the_old_one_stays() {
    let good = "nodes:\n  - type: limiter\n    config: { threshold_db: -6.0 }\n";
    let input = sine(-1.0, 1.0);
    let run = run(
        |e| {
            e.set_property("graph", good);
            e.set_property(
                "graph",
                "nodes:\n  - type: compressor\n    config: { ratio: 0.5 }\n",
            );
            assert_eq!(e.property::<String>("graph"), good);
        },
        None,
        &input,
    );
    let warning = run
        .messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .expect("a warning on the bus");
    assert!(
        warning.contains("nodes[0] (compressor).ratio = 0.5"),
        "{warning}"
    );
    let peak = run.output.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(20.0 * f64::from(peak).log10() <= -6.0 + 1e-4);
}

#[test]
fn a_graph_of_another_shape_takes_over_mid_stream_without_a_click() {
    // A heavy compressor, settled on a loud sine, is swapped for an empty graph half-way: the
    // level must climb back by a crossfade, not jump.
    let squash = "nodes:\n  - type: compressor\n    config: { threshold_db: -30.0, ratio: 10.0 }\n";
    // 997 Hz, so that the switch, at a buffer's start, does not fall on a zero crossing.
    let amp = 10f32.powf(-1.0 / 20.0);
    let input: Vec<f32> = (0..RATE as usize)
        .flat_map(|i| {
            let v = amp * (std::f32::consts::TAU * 997.0 * i as f32 / RATE as f32).sin();
            [v, v]
        })
        .collect();
    let run = run(
        |e| {
            e.set_property("graph", squash);
            let element = e.clone();
            let sink = e.static_pad("sink").unwrap();
            let done = std::sync::atomic::AtomicBool::new(false);
            sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let half = gst::ClockTime::from_mseconds(500);
                if info.buffer().and_then(|b| b.pts()) >= Some(half)
                    && !done.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    element.set_property("graph", "");
                }
                gst::PadProbeReturn::Ok
            });
        },
        None,
        &input,
    );
    let left: Vec<f32> = run.output.iter().step_by(2).copied().collect();
    let half = RATE as usize / 2;
    // Before: squashed; at the end: the sine as it came in.
    assert!(rms_db(&left[half - 4800..half]) < rms_db(&sine(-1.0, 0.1)) - 10.0);
    let tail = left.len() - 4800;
    let want: Vec<f32> = input.iter().step_by(2).copied().collect();
    assert!(
        left[tail..]
            .iter()
            .zip(&want[tail..])
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    // And from once the compressor has settled, through the switch to the end, no step
    // between samples beyond the sine's own steepest.
    let sine_step = amp * std::f32::consts::TAU * 997.0 / RATE as f32;
    let worst = left[half - 4800..]
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= sine_step * 1.01,
        "a step of {worst} (sine: {sine_step})"
    );
}

#[test]
fn silence_is_reported_on_the_bus() {
    let mut input = sine(-10.0, 1.0);
    input.extend(std::iter::repeat_n(0.0, 2 * RATE as usize * 3));
    input.extend(sine(-10.0, 2.0));
    let run = run(
        |e| {
            e.set_property(
                "graph",
                "nodes:\n  - type: silence_detector\n    config: { threshold_db: -50, duration_sec: 1.5 }\n",
            )
        },
        None,
        &input,
    );
    let events: Vec<(bool, u64)> = element_messages(&run, grimnir_engine::SILENCE_MESSAGE)
        .map(|s| {
            (
                s.get::<bool>("silent").unwrap(),
                s.get::<u64>("frame").unwrap(),
            )
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].0 && !events[1].0, "{events:?}");
    // Silence from 1 s, detected 1.5 s later; audio back at 4 s.
    let started = events[0].1 as f64 / f64::from(RATE);
    assert!((2.5..=2.6).contains(&started), "{started}");
    // The sine's first sample is 0: the audio is back at the frame after.
    assert_eq!(events[1].1, 4 * u64::from(RATE) + 1);
}
