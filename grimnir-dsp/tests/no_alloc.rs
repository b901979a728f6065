//! The real-time contract, proved: once prepared, the whole chain (every node type) processes,
//! takes parameter updates and reports events without a single heap allocation.
//!
//! A counting global allocator records allocations made on this test's thread while counting is
//! armed. It lives in its own test binary so no other test shares the allocator.

// A global allocator cannot be written without `unsafe`; it only forwards to the system one.
#![allow(unsafe_code)]
// Test code: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use grimnir_dsp::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates, so the allocator may use it.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn every_node() -> DspGraph {
    DspGraph {
        nodes: vec![
            Node::LoudnessNormalize(LoudnessNormalize::default()),
            Node::Agc(Agc::default()),
            Node::Compressor(Compressor::default()),
            Node::Ducking(Ducking::default()),
            Node::Limiter(Limiter::default()),
            Node::SilenceDetector(SilenceDetector {
                duration_sec: 0.5,
                ..SilenceDetector::default()
            }),
        ],
    }
}

#[test]
fn the_whole_chain_never_allocates_once_prepared() {
    let spec = AudioSpec::new(48_000, 2).unwrap();
    let mut chain = Chain::new(&every_node()).unwrap();
    chain.prepare(spec).unwrap();
    // Everything the run needs is allocated before counting starts.
    let mut block = vec![0f32; 2 * 1024];
    let mut mic = vec![0f32; 2 * 1024];
    let mut louder = every_node();
    if let Node::Compressor(c) = &mut louder.nodes[2] {
        c.ratio = 8.0;
        c.makeup_gain_db = 6.0;
    }
    let mut events = 0;

    ARMED.with(|a| a.set(true));
    for n in 0..400usize {
        // Music, a silent stretch, bad samples and a talking microphone, in turn.
        for (i, x) in block.iter_mut().enumerate() {
            let t = (n * 1024 + i / 2) as f32 / 48_000.0;
            *x = if (100..160).contains(&n) {
                0.0
            } else {
                0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
            };
        }
        if n % 50 == 7 {
            block[3] = f32::NAN;
            block[9] = f32::INFINITY;
        }
        for (i, m) in mic.iter_mut().enumerate() {
            *m = if (200..260).contains(&n) {
                0.3 * ((i as f32) * 0.05).sin()
            } else {
                0.0
            };
        }
        if n == 300 {
            chain.update(&louder).unwrap();
            chain.set_track_loudness(Some(-12.0));
        }
        if n == 320 {
            // Building a chain of another shape allocates, as the control side does; the
            // crossfade to it that follows, on the audio side, must not.
            ARMED.with(|a| a.set(false));
            let mut other = every_node();
            other.nodes.remove(1);
            chain.replace(&other, 48_000).unwrap();
            ARMED.with(|a| a.set(true));
        }
        chain.process_with_sidechain(&mut block, Some(&mic));
        while chain.take_silence_event().is_some() {
            events += 1;
        }
    }
    chain.reset();
    ARMED.with(|a| a.set(false));

    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations while processing"
    );
    assert!(events >= 1, "the silent stretch was reported");
    assert!(block.iter().all(|x| x.is_finite()));
}
