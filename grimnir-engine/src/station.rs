//! Live playout: a station on air, in real time, to its outputs.
//!
//! ```text
//! items ─> loader thread (opens decoders ahead of time)
//!            └─> playout thread: Mixer ─> appsrc ─> grimnirdsp ─> tee ─┬─> queue ─> MP3 encoder ─> appsink ─┬─> Output (Icecast)
//!                                                                       │                                   └─> Output (recording)
//!                                                                       └─> queue ─> Opus encoder ─> appsink ─> Ogg framing ─> Output (Icecast)
//! ```
//!
//! Opus streams are framed in Ogg by [`crate::output::ogg::OggOpus`] rather than `oggmux`: each
//! new title begins a new chain whose comment header carries it, which is how Ogg listeners
//! (and Icecast, which takes no title updates for Ogg) learn of it.
//!
//! The playout thread keeps [`StationConfig::lead`] of mixed audio ready ahead of the wall
//! clock: it renders blocks while it is short of that and sleeps otherwise, so items start
//! on their frame of the station's timeline. Mixed blocks are held back and handed to the DSP
//! and the encoders only [`StationConfig::handoff`] before their time, so the outputs
//! receive audio in real time, and audio mixed but not yet handed over can still be replaced:
//! an emergency ([`Station::insert_emergency`]) takes the air from the first block not yet
//! handed over, not after the whole lead. Each
//! distinct [`Encoding`] is encoded once; every output of it gets the packets through its own
//! queue and thread ([`crate::output`]), so a stalled or failed output costs only itself.
//!
//! Times are on the station clock: seconds since [`Station::start`]. Items are scheduled
//! with [`Station::schedule`] at a start on that clock; the station opens each one
//! [`StationConfig::preload`] ahead, on a loader thread, so slow storage never holds up the
//! air. An item whose file cannot be opened is reported ([`StationEvent::Failed`]) and the
//! rest of the timeline stays in place.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use grimnir_dsp::DspGraph;
use gst::prelude::*;

use crate::EngineError;
use crate::decode::Decoder;
use crate::encode::{Encoding, element};
use crate::mix::{MixEvent, Mixer};
use crate::output::ogg::OggOpus;
use crate::output::{Backoff, Destination, NowPlaying, Output, OutputHealth, Packet};
use crate::render::{Item, audio_buffer, placement_for, target_lufs};

/// The longest the playout thread sleeps: the loader's results and the bus wait this long at
/// most.
const MAX_NAP: Duration = Duration::from_millis(100);

/// How long a stopped item, or the programme under an emergency, takes to fall silent: short
/// enough to count as a cut, long enough not to click.
const CUT: Duration = Duration::from_millis(5);

/// Seconds of mixed audio the pipeline's source may hold before it drops the oldest.
const QUEUE_SECONDS: u64 = 5;

/// An output of a station: a destination fed with one encoding.
pub struct OutputConfig {
    /// A name for telemetry and events (`icecast-main`, `archive`).
    pub name: String,
    /// What it carries.
    pub encoding: Encoding,
    /// Where it goes: [`crate::output::icecast::Icecast`],
    /// [`crate::output::record::Recorder`], [`crate::output::hls::Hls`], or your own.
    pub destination: Box<dyn Destination>,
}

impl std::fmt::Debug for OutputConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputConfig")
            .field("name", &self.name)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// How a station runs.
#[derive(Debug)]
pub struct StationConfig {
    /// Sample rate, Hz (48 000 by default).
    pub rate: u32,
    /// Channels (2).
    pub channels: usize,
    /// The DSP chain.
    pub graph: DspGraph,
    /// The outputs.
    pub outputs: Vec<OutputConfig>,
    /// Mixed audio kept ready ahead of the wall clock (300 ms): the margin against a late
    /// wake-up of the playout thread.
    pub lead: Duration,
    /// How long before its time a mixed block is handed to the DSP and the encoders (20 ms).
    /// Until then an emergency can still replace it, so this (plus a block and the time to
    /// open the alert's file) is the delay from [`Station::insert_emergency`] to the alert on
    /// air. Larger values only add delay; the mixing margin is [`StationConfig::lead`].
    pub handoff: Duration,
    /// Frames per block (1024).
    pub block: usize,
    /// How far ahead of its start an item is opened (30 s, SPEC.md's preload at T−30 s).
    pub preload: Duration,
    /// Packets each output may hold queued before it loses some (512: about 13 s of MP3).
    pub output_queue: usize,
    /// Waits between attempts to reopen a failed output.
    pub backoff: Backoff,
    /// How often [`StationEvent::Telemetry`] comes (1 s).
    pub telemetry_interval: Duration,
}

impl StationConfig {
    /// A 48 kHz stereo station with `graph` and no outputs yet.
    pub fn new(graph: DspGraph) -> StationConfig {
        StationConfig {
            rate: 48_000,
            channels: 2,
            graph,
            outputs: Vec::new(),
            lead: Duration::from_millis(300),
            handoff: Duration::from_millis(20),
            block: 1024,
            preload: Duration::from_secs(30),
            output_queue: 512,
            backoff: Backoff::default(),
            telemetry_interval: Duration::from_secs(1),
        }
    }

    /// Adds an output.
    pub fn output(
        mut self,
        name: &str,
        encoding: Encoding,
        destination: impl Destination,
    ) -> StationConfig {
        self.outputs.push(OutputConfig {
            name: name.to_owned(),
            encoding,
            destination: Box::new(destination),
        });
        self
    }
}

/// Loudness of the processed output, as the DSP element's meter last read it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Loudness {
    /// Momentary (400 ms), LUFS.
    pub momentary: f64,
    /// Short-term (3 s), LUFS.
    pub short_term: f64,
    /// Integrated since start, LUFS.
    pub integrated: f64,
    /// Loudness range, LU.
    pub range: f64,
    /// Highest true peak since start, dBTP.
    pub true_peak: f64,
}

/// The item on air.
#[derive(Debug, Clone, PartialEq)]
pub struct OnAir {
    /// The id it was scheduled with.
    pub id: u64,
    /// Its metadata, if it has any.
    pub meta: Option<NowPlaying>,
    /// Seconds of it played.
    pub position: f64,
}

/// A station's state, reported every [`StationConfig::telemetry_interval`].
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Station clock, seconds.
    pub clock: f64,
    /// Frames mixed so far.
    pub frames: u64,
    /// Frames mixed ahead of the wall clock (negative: behind, an underrun).
    pub buffer_depth: i64,
    /// Times the playout fell behind the wall clock.
    pub underruns: u64,
    /// Mixed frames waiting for the DSP and the encoders: it grows when they cannot keep
    /// up with real time.
    pub queued: u64,
    /// Times that queue was full and the oldest audio in it was dropped.
    pub dropouts: u64,
    /// The processed output's loudness.
    pub loudness: Option<Loudness>,
    /// Every output's health.
    pub outputs: Vec<OutputHealth>,
    /// The item that started last and is still playing.
    pub on_air: Option<OnAir>,
    /// The process's CPU use since the last report, percent of one core (Linux only).
    pub cpu_percent: Option<f64>,
    /// Whether an emergency is on air.
    pub emergency: bool,
}

/// Something that happened on a station.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StationEvent {
    /// An item's first frame was mixed. `late` is how many seconds after its scheduled start
    /// that was (0 when on time).
    Started {
        /// The item's id.
        id: u64,
        /// Station clock of its first frame, seconds.
        at: f64,
        /// Seconds late.
        late: f64,
    },
    /// An item finished (its last frame was mixed).
    Ended {
        /// The item's id.
        id: u64,
        /// Station clock, seconds.
        at: f64,
    },
    /// An item was stopped before it started ([`Station::stop_item`], [`Station::stop_all`]).
    Cancelled {
        /// The item's id.
        id: u64,
    },
    /// An item could not be played, or broke off: it is skipped and the timeline stays.
    Failed {
        /// The item's id.
        id: u64,
        /// The file and the reason.
        reason: String,
    },
    /// Silence on the processed output began (`true`) or ended (`false`).
    Silence {
        /// Whether it is silent now.
        silent: bool,
    },
    /// An output changed state.
    Output(OutputHealth),
    /// The pipeline reported a problem.
    Warning(String),
    /// The periodic report.
    Telemetry(Telemetry),
    /// A webstream item's health changed.
    Webstream {
        /// The item's id.
        id: u64,
        /// Its state now.
        status: crate::input::webstream::WebstreamStatus,
    },
}

enum Command {
    Schedule(u64, Box<Item>),
    Fade { id: u64, at: f64, seconds: f64 },
    Graph(Box<DspGraph>),
    Cancel(u64),
    CancelAll,
    Emergency(u64, Box<Item>),
    Live(u64, Box<LiveItem>),
    EmergencyOpened(u64, Box<Item>, Result<Decoder, EngineError>),
    Shutdown,
}

/// A source already open (a live input) going on air at the next frame not yet mixed.
struct LiveItem {
    source: Box<dyn crate::mix::Source>,
    meta: Option<NowPlaying>,
    fade_in: f64,
}

/// Something that must reach the pipeline or the outputs with the audio of a given frame,
/// not when that audio was mixed.
enum Signal {
    Loudness(Option<f64>),
    Title(NowPlaying),
}

/// A station on air. Dropping it stops it.
#[derive(Debug)]
pub struct Station {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    dsp: crate::DspElement,
    encodings: Vec<Encoding>,
}

/// The outputs of one encoding, shared by its appsink callback and the telemetry.
type Group = Arc<Mutex<Vec<Output>>>;

/// The Ogg framing of an Opus branch, shared by its appsink callback and the playout thread
/// (which announces titles).
#[derive(Debug, Default)]
struct OggBranch {
    framing: Option<OggOpus>,
    /// A title announced before the encoder's first header arrived.
    title: Option<NowPlaying>,
}

impl OggBranch {
    /// Takes one buffer from the encoder: headers set up the framing; an audio packet gives the
    /// pages it completes.
    fn take(&mut self, bytes: &[u8], header: bool) -> Vec<Packet> {
        // The encoder may give its headers only in its caps, or in-band without the flag.
        let header = header
            || (self.framing.is_none()
                && (bytes.starts_with(b"OpusHead") || bytes.starts_with(b"OpusTags")));
        if header {
            if bytes.starts_with(b"OpusHead") {
                self.framing = OggOpus::new(bytes).ok();
                if let (Some(f), Some(t)) = (self.framing.as_mut(), self.title.take()) {
                    f.now_playing(t);
                }
            } else if let Some(f) = self.framing.as_mut() {
                f.set_vendor_from_tags(bytes);
            }
            return Vec::new();
        }
        match self.framing.as_mut() {
            Some(f) => f.push(bytes),
            None => Vec::new(),
        }
    }

    /// Sets up the framing from the caps' `streamheader` (`OpusHead`, `OpusTags`), if the
    /// encoder's headers have not been seen yet.
    fn headers_from_caps(&mut self, caps: Option<&gst::CapsRef>) {
        if self.framing.is_some() {
            return;
        }
        let Some(headers) = caps
            .and_then(|c| c.structure(0))
            .and_then(|s| s.get::<gst::ArrayRef<'_>>("streamheader").ok())
        else {
            return;
        };
        for value in headers.iter() {
            if let Ok(buffer) = value.get::<gst::Buffer>()
                && let Ok(map) = buffer.map_readable()
            {
                self.take(&map, true);
            }
        }
    }

    fn now_playing(&mut self, meta: NowPlaying) {
        match self.framing.as_mut() {
            Some(f) => f.now_playing(meta),
            None => self.title = Some(meta),
        }
    }
}

impl Station {
    /// Builds the pipeline, starts the outputs and puts the station on air (silence until
    /// the first item). Events arrive on the returned receiver; one that is not read loses
    /// events, never audio.
    pub fn start(config: StationConfig) -> Result<(Station, Receiver<StationEvent>), EngineError> {
        crate::init()?;
        config.graph.validate()?;
        let rate = config.rate;
        let channels = config.channels.max(1);
        let caps = gst_audio::AudioCapsBuilder::new_interleaved()
            .format(gst_audio::AudioFormat::F32le)
            .rate(rate as i32)
            .channels(channels as i32)
            .build();
        // The playout thread paces itself, so the source never blocks it; five seconds of
        // queue absorb a stall of the encoders, beyond that the oldest audio goes.
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .block(false)
            .max_bytes(u64::from(rate) * QUEUE_SECONDS * channels as u64 * 4)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let dsp = crate::DspElement::new();
        dsp.set_graph(&config.graph)?;
        let millis = config.telemetry_interval.as_millis().clamp(1, 60_000) as u64;
        dsp.set_property("meter-interval", millis);
        let tee = element("tee")?;
        tee.set_property("allow-not-linked", true);
        let pipeline = gst::Pipeline::new();
        let fail = |e: gst::glib::BoolError| EngineError::Pipeline(e.to_string());
        pipeline
            .add_many([src.upcast_ref(), dsp.upcast_ref(), &tee])
            .map_err(fail)?;
        gst::Element::link_many([src.upcast_ref(), dsp.upcast_ref(), &tee]).map_err(fail)?;

        // One encoder per distinct encoding, its outputs behind it.
        let mut groups: Vec<(Encoding, Group)> = Vec::new();
        for out in config.outputs {
            let stream = out.encoding.stream_info(rate, channels as u32);
            let output = Output::start(
                &out.name,
                stream,
                out.destination,
                config.output_queue,
                config.backoff,
            )?;
            match groups.iter().find(|(e, _)| *e == out.encoding) {
                Some((_, group)) => lock(group).push(output),
                None => groups.push((out.encoding, Arc::new(Mutex::new(vec![output])))),
            }
        }
        let mut oggs = Vec::new();
        for (encoding, group) in &groups {
            let ogg = matches!(encoding, Encoding::Opus { .. })
                .then(|| Arc::new(Mutex::new(OggBranch::default())));
            oggs.extend(ogg.clone());
            let queue = element("queue")?;
            queue.set_property("max-size-time", 2 * gst::ClockTime::SECOND.nseconds());
            queue.set_property("max-size-buffers", 0u32);
            queue.set_property("max-size-bytes", 0u32);
            let mut branch = vec![queue];
            branch.extend(encoding.stream_elements()?);
            let group = Arc::clone(group);
            let sink = gst_app::AppSink::builder()
                .sync(false)
                .callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let Some(buffer) = sample.buffer_owned() else {
                                return Ok(gst::FlowSuccess::Ok);
                            };
                            let header = buffer.flags().contains(gst::BufferFlags::HEADER);
                            let packets = match &ogg {
                                Some(ogg) => {
                                    let Ok(map) = buffer.map_readable() else {
                                        return Ok(gst::FlowSuccess::Ok);
                                    };
                                    let mut ogg = lock(ogg);
                                    ogg.headers_from_caps(sample.caps());
                                    ogg.take(&map, header)
                                }
                                None => vec![Packet { buffer, header }],
                            };
                            for packet in packets {
                                for output in lock(&group).iter() {
                                    output.send(packet.clone());
                                }
                            }
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                )
                .build();
            branch.push(sink.upcast());
            pipeline.add_many(&branch).map_err(fail)?;
            gst::Element::link_many(&branch).map_err(fail)?;
            tee.link(&branch[0]).map_err(fail)?;
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| EngineError::Pipeline(format!("cannot start the station: {e}")))?;

        let encodings = groups.iter().map(|(e, _)| *e).collect();
        let (commands, command_rx) = mpsc::channel();
        let (events, event_rx) = mpsc::sync_channel(1024);
        let started = Instant::now();
        let playout = Playout {
            rate,
            channels,
            block: config.block.max(16),
            lead: frames_of(config.lead, rate),
            handoff: frames_of(config.handoff, rate),
            preload: frames_of(config.preload, rate),
            telemetry_interval: config.telemetry_interval,
            target: target_lufs(&config.graph),
            pipeline,
            src,
            groups,
            oggs,
            events,
            started,
            mixer: Mixer::new(channels),
            held: VecDeque::new(),
            spare_blocks: Vec::new(),
            cut_in: Mixer::new(channels),
            cut_in_from: 0,
            emergencies: HashSet::new(),
            opening_emergencies: HashSet::new(),
            programme_gain: 1.0,
            cut_in_block: Vec::new(),
            signals: VecDeque::new(),
            sounding: HashSet::new(),
            commands_tx: commands.clone(),
            items: BTreeMap::new(),
            meta: HashMap::new(),
            scheduled_start: HashMap::new(),
            fades: HashMap::new(),
            item_lufs: HashMap::new(),
            open_ended: HashSet::new(),
            underruns: 0,
            dropouts: 0,
            queue_limit: u64::from(rate) * QUEUE_SECONDS,
            behind: false,
            loudness: None,
            on_air: None,
            output_states: HashMap::new(),
            cpu: CpuClock::new(),
        };
        let thread = std::thread::Builder::new()
            .name("playout".into())
            .spawn(move || playout.run(command_rx))
            .map_err(|e| EngineError::Pipeline(format!("cannot start the playout thread: {e}")))?;
        Ok((
            Station {
                commands,
                thread: Some(thread),
                started,
                dsp,
                encodings,
            },
            event_rx,
        ))
    }

    /// The station clock: seconds since start.
    pub fn clock(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The encodings running: one per distinct encoding of the outputs.
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    /// Schedules `item` under `id` at `item.start` on the station clock. An item scheduled
    /// for a time already past starts as soon as it is open, and says how late it was.
    pub fn schedule(&self, id: u64, item: Item) -> Result<(), EngineError> {
        self.send(Command::Schedule(id, Box::new(item)))
    }

    /// Fades item `id` out over `seconds`, from `at` on the station clock (now, if past).
    pub fn fade_out(&self, id: u64, at: f64, seconds: f64) -> Result<(), EngineError> {
        self.send(Command::Fade { id, at, seconds })
    }

    /// Stops item `id` at once (a 5 ms fade at the first frame not yet mixed), or cancels it
    /// ([`StationEvent::Cancelled`]) if it has not started. An emergency stops from the
    /// first frame not yet handed over. An unknown id is ignored.
    pub fn stop_item(&self, id: u64) -> Result<(), EngineError> {
        self.send(Command::Cancel(id))
    }

    /// Stops everything: every item on air and any emergency, and cancels every item waiting.
    pub fn stop_all(&self) -> Result<(), EngineError> {
        self.send(Command::CancelAll)
    }

    /// Cuts `item` in at once, above everything: as soon as its file is open it sounds from
    /// the first block not yet handed to the encoders (`item.start` is ignored); the items on
    /// air are cut, and anything that starts while it sounds is muted under it. A second
    /// emergency replaces the first.
    pub fn insert_emergency(&self, id: u64, item: Item) -> Result<(), EngineError> {
        self.send(Command::Emergency(id, Box::new(item)))
    }

    /// Puts an open source on air under `id` at the first frame not yet mixed (some
    /// [`StationConfig::lead`] ahead of the wall clock), fading in over `fade_in` seconds,
    /// until it ends: a live input ([`crate::input::LiveSource`]) ends when its connection
    /// closes and its buffer has played. Nothing else on air is touched: fade what it
    /// replaces with [`Station::fade_out`]. Its loudness is unknown, so the normalizer
    /// measures it as it plays. [`Station::stop_item`] takes it off at once.
    pub fn play_live(
        &self,
        id: u64,
        source: Box<dyn crate::mix::Source>,
        meta: Option<NowPlaying>,
        fade_in: f64,
    ) -> Result<(), EngineError> {
        self.send(Command::Live(
            id,
            Box::new(LiveItem {
                source,
                meta,
                fade_in,
            }),
        ))
    }

    /// Replaces the DSP graph without a click: one of the same shape is applied in place, one
    /// of another shape by a 100 ms crossfade from the running chain; a refused graph is an
    /// error and the current one stays.
    pub fn set_graph(&self, graph: DspGraph) -> Result<(), EngineError> {
        graph.validate()?;
        self.dsp.set_graph(&graph)?;
        self.send(Command::Graph(Box::new(graph)))
    }

    /// Takes the station off air: what is mixed is encoded and written, the outputs close.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        self.commands
            .send(command)
            .map_err(|_| EngineError::Pipeline("the station has stopped".into()))
    }

    fn shut_down(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn frames_of(d: Duration, rate: u32) -> u64 {
    (d.as_secs_f64() * f64::from(rate)).round() as u64
}

/// An item waiting for its turn: scheduled, being opened, or open and placed.
enum Slot {
    Waiting(Box<Item>),
    Opening,
}

/// Opens decoders on a thread of its own, so a slow file system never holds up the air.
struct Loader {
    requests: Sender<(u64, Box<Item>)>,
    results: Receiver<(u64, Box<Item>, Opened)>,
}

/// An item's source, opened.
type Opened = Result<Box<dyn crate::mix::Source>, EngineError>;

/// Opens an item: its file, or its webstream (whose health changes become events).
fn open_item(
    id: u64,
    item: &Item,
    rate: u32,
    channels: usize,
    events: &SyncSender<StationEvent>,
) -> Opened {
    match &item.webstream {
        Some(urls) => {
            let config = crate::input::webstream::WebstreamConfig::new(
                urls.clone(),
                crate::input::LiveConfig::new(rate, channels),
            );
            let events = events.clone();
            let stream = crate::input::webstream::Webstream::start(
                config,
                Box::new(move |status| {
                    let _ = events.try_send(StationEvent::Webstream {
                        id,
                        status: status.clone(),
                    });
                }),
            )?;
            Ok(Box::new(stream))
        }
        None => Ok(Box::new(Decoder::open(
            &item.path,
            rate,
            channels,
            item.cue_in,
        )?)),
    }
}

impl Loader {
    fn start(
        rate: u32,
        channels: usize,
        events: SyncSender<StationEvent>,
    ) -> Result<Loader, EngineError> {
        let (requests, request_rx) = mpsc::channel::<(u64, Box<Item>)>();
        let (result_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                for (id, item) in request_rx {
                    let decoder = open_item(id, &item, rate, channels, &events);
                    if result_tx.send((id, item, decoder)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::Pipeline(format!("cannot start the loader: {e}")))?;
        Ok(Loader { requests, results })
    }
}

/// The process's CPU time, for the telemetry's CPU figure.
struct CpuClock {
    last: Option<(Instant, f64)>,
}

impl CpuClock {
    fn new() -> CpuClock {
        CpuClock {
            last: cpu_seconds().map(|s| (Instant::now(), s)),
        }
    }

    /// Percent of one core since the last call.
    fn percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), cpu_seconds()?);
        let (t0, s0) = self.last.replace(now)?;
        let wall = now.0.duration_since(t0).as_secs_f64();
        (wall > 0.0).then(|| 100.0 * (now.1 - s0) / wall)
    }
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (Linux; the kernel
/// reports them in USER_HZ ticks, 100 per second on every Linux platform).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Playout {
    rate: u32,
    channels: usize,
    block: usize,
    lead: u64,
    handoff: u64,
    preload: u64,
    telemetry_interval: Duration,
    target: Option<f64>,
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    groups: Vec<(Encoding, Group)>,
    /// The Ogg framing of each Opus branch.
    oggs: Vec<Arc<Mutex<OggBranch>>>,
    events: SyncSender<StationEvent>,
    started: Instant,
    mixer: Mixer,
    /// Mixed blocks not yet handed to the pipeline, by their first frame.
    held: VecDeque<(u64, Vec<f32>)>,
    /// Blocks handed over, for reuse.
    spare_blocks: Vec<Vec<f32>>,
    /// The emergency mixer: it runs at the hand-over point, not `lead` ahead.
    cut_in: Mixer,
    /// First frame of the emergency on air.
    cut_in_from: u64,
    /// Emergencies placed and not over.
    emergencies: HashSet<u64>,
    /// Emergencies whose file is being opened.
    opening_emergencies: HashSet<u64>,
    /// The programme's gain: 1, or ramping to 0 under an emergency.
    programme_gain: f32,
    /// One block of the emergency mixer's output.
    cut_in_block: Vec<f32>,
    /// Signals waiting for their frame to be handed over.
    signals: VecDeque<(u64, Signal)>,
    /// Programme items that started and have not ended.
    sounding: HashSet<u64>,
    /// For the threads that open emergencies: they answer through the command queue, which
    /// wakes the playout thread at once.
    commands_tx: Sender<Command>,
    /// Items not yet placed, by (start frame, id).
    items: BTreeMap<(u64, u64), Slot>,
    meta: HashMap<u64, Option<NowPlaying>>,
    scheduled_start: HashMap<u64, u64>,
    /// Each item's measured loudness, for the normalizer when it starts.
    item_lufs: HashMap<u64, Option<f64>>,
    /// Items without a cue-out: their file's end is their end.
    open_ended: HashSet<u64>,
    /// Fades asked for items not placed yet: (at, frames).
    fades: HashMap<u64, (u64, u64)>,
    underruns: u64,
    dropouts: u64,
    /// The source queue's size, frames.
    queue_limit: u64,
    behind: bool,
    loudness: Option<Loudness>,
    on_air: Option<(u64, u64)>,
    /// Each output's last known state and warning count.
    output_states: HashMap<String, (crate::output::OutputState, u64)>,
    cpu: CpuClock,
}

impl Playout {
    fn run(mut self, commands: Receiver<Command>) {
        let loader = match Loader::start(self.rate, self.channels, self.events.clone()) {
            Ok(l) => l,
            Err(e) => {
                self.emit(StationEvent::Warning(e.to_string()));
                return;
            }
        };
        let mut next_report = Instant::now() + self.telemetry_interval;
        'air: loop {
            loop {
                match commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => break 'air,
                    Ok(command) => self.command(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.request_loads(&loader);
            while let Ok((id, item, decoder)) = loader.results.try_recv() {
                self.opened(id, item, decoder);
            }
            let now = self.wall_frame();
            // Nothing was owed before the first pass: only a later one can be late.
            if self.mixer.position() < now && self.mixer.position() > 0 {
                if !self.behind {
                    self.underruns += 1;
                    self.behind = true;
                }
            } else {
                self.behind = false;
            }
            while self.mixer.position() < now + self.lead {
                let start = self.mixer.position();
                let mut block = self
                    .spare_blocks
                    .pop()
                    .unwrap_or_else(|| vec![0f32; self.block * self.channels]);
                self.mixer.render(&mut block);
                self.held.push_back((start, block));
                let events = self.mixer.take_events();
                self.mix_events(events, false);
            }
            if !self.hand_over(self.wall_frame() + self.handoff) {
                break 'air;
            }
            self.bus();
            self.output_changes();
            if Instant::now() >= next_report {
                next_report += self.telemetry_interval;
                let report = self.telemetry();
                self.emit(StationEvent::Telemetry(report));
            }
            // Sleep until the next block is due for hand-over, half the lead is used up, the
            // next report is due, or a command comes: a command is acted on at once.
            let wall = self.wall_frame();
            let ahead = self.mixer.position().saturating_sub(wall);
            let spare = self.duration(ahead.saturating_sub(self.lead / 2));
            let due = self.held.front().map_or(Duration::MAX, |(start, _)| {
                self.duration(start.saturating_sub(self.handoff).saturating_sub(wall))
            });
            let until_report = next_report.saturating_duration_since(Instant::now());
            let nap = spare
                .min(until_report)
                .min(due)
                .clamp(Duration::from_millis(1), MAX_NAP);
            match commands.recv_timeout(nap) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break 'air,
                Ok(command) => self.command(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        // What is mixed goes out before the end.
        self.hand_over(u64::MAX);
        let _ = self.src.end_of_stream();
        if let Some(bus) = self.pipeline.bus() {
            let _ = bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        for (_, group) in self.groups.drain(..) {
            for output in lock(&group).drain(..) {
                output.stop();
            }
        }
    }

    /// Hands every held block that starts before frame `due` to the pipeline, with the
    /// emergency (if any) cut in. Returns `false` when the pipeline has stopped.
    fn hand_over(&mut self, due: u64) -> bool {
        while self.held.front().is_some_and(|(start, _)| *start < due) {
            let Some((start, mut block)) = self.held.pop_front() else {
                break;
            };
            self.cut_in(start, &mut block);
            let end = start + (block.len() / self.channels) as u64;
            while self.signals.front().is_some_and(|(frame, _)| *frame < end) {
                let Some((_, signal)) = self.signals.pop_front() else {
                    break;
                };
                self.signal(signal);
            }
            // A full queue leaks its oldest audio: count it, as the outputs will miss it.
            if self.queued_frames() + self.block as u64 > self.queue_limit {
                self.dropouts += 1;
            }
            let pushed = match audio_buffer(&block, self.channels, start, self.rate) {
                Ok(buffer) => self.src.push_buffer(buffer).is_ok(),
                Err(e) => {
                    self.emit(StationEvent::Warning(e.to_string()));
                    true
                }
            };
            self.spare_blocks.push(block);
            if !pushed {
                self.emit(StationEvent::Warning(
                    "the pipeline refused audio: it has stopped".into(),
                ));
                return false;
            }
        }
        true
    }

    /// Mixes the emergency into a block about to be handed over: the programme under it
    /// ramps to silence over [`CUT`] and back when it ends.
    fn cut_in(&mut self, start: u64, block: &mut [f32]) {
        let frames = (block.len() / self.channels) as u64;
        if self.cut_in.pending() == 0 {
            self.cut_in.advance_to(start);
            if self.programme_gain >= 1.0 {
                self.cut_in.advance_to(start + frames);
                return;
            }
        }
        let from = self.cut_in_from;
        let until = self.cut_in.covered_until();
        self.cut_in_block.resize(block.len(), 0.0);
        self.cut_in.render(&mut self.cut_in_block);
        let step = 1.0 / frames_of(CUT, self.rate).max(1) as f32;
        for (k, (out, alert)) in block
            .chunks_mut(self.channels)
            .zip(self.cut_in_block.chunks(self.channels))
            .enumerate()
        {
            let frame = start + k as u64;
            let target = if frame >= from && frame < until {
                0.0
            } else {
                1.0
            };
            self.programme_gain = if self.programme_gain < target {
                (self.programme_gain + step).min(target)
            } else {
                (self.programme_gain - step).max(target)
            };
            for (o, a) in out.iter_mut().zip(alert) {
                *o = *o * self.programme_gain + a;
            }
        }
        let events = self.cut_in.take_events();
        self.mix_events(events, true);
    }

    fn signal(&mut self, signal: Signal) {
        match signal {
            Signal::Loudness(lufs) => {
                self.src.send_event(crate::track_loudness_event(lufs));
            }
            Signal::Title(meta) => {
                for (_, group) in &self.groups {
                    for output in lock(group).iter() {
                        output.now_playing(meta.clone());
                    }
                }
                // Ogg streams carry titles in the stream: a new chain.
                for ogg in &self.oggs {
                    lock(ogg).now_playing(meta.clone());
                }
            }
        }
    }

    fn duration(&self, frames: u64) -> Duration {
        Duration::from_secs_f64(frames as f64 / f64::from(self.rate))
    }

    /// Frames in the source's queue, not yet taken by the DSP and the encoders.
    fn queued_frames(&self) -> u64 {
        self.src.current_level_bytes() / (4 * self.channels as u64)
    }

    fn wall_frame(&self) -> u64 {
        frames_of(self.started.elapsed(), self.rate)
    }

    fn seconds(&self, frame: u64) -> f64 {
        frame as f64 / f64::from(self.rate)
    }

    fn emit(&self, event: StationEvent) {
        let _ = self.events.try_send(event);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Schedule(id, item) => {
                let start = frames_of(Duration::from_secs_f64(item.start.max(0.0)), self.rate);
                self.meta.insert(id, item.meta.clone());
                self.item_lufs.insert(id, item.lufs);
                if item.cue_out.is_none() {
                    self.open_ended.insert(id);
                }
                self.scheduled_start.insert(id, start);
                self.items.insert((start, id), Slot::Waiting(item));
            }
            Command::Fade { id, at, seconds } => {
                let at = frames_of(Duration::from_secs_f64(at.max(0.0)), self.rate);
                let frames = frames_of(Duration::from_secs_f64(seconds.max(0.0)), self.rate);
                if self.cut_in.fade_out(id, at, frames) {
                    return;
                }
                if !self.mixer.fade_out(id, at, frames) {
                    // Not placed yet: the fade applies when it is (and drops it if the fade
                    // is over before it would start).
                    self.fades.insert(id, (at, frames));
                }
            }
            Command::Graph(graph) => self.target = target_lufs(&graph),
            Command::Cancel(id) => self.cancel(id),
            Command::CancelAll => {
                let mut ids: Vec<u64> = self.items.keys().map(|(_, id)| *id).collect();
                ids.extend(self.mixer.ids());
                ids.extend(self.cut_in.ids());
                ids.extend(self.opening_emergencies.iter().copied());
                for id in ids {
                    self.cancel(id);
                }
            }
            Command::Emergency(id, item) => {
                let (rate, channels) = (self.rate, self.channels);
                let tx = self.commands_tx.clone();
                // Its own thread: the loader may be busy opening an item due in 30 s.
                let spawned = std::thread::Builder::new()
                    .name("emergency-loader".into())
                    .spawn(move || {
                        let decoder = Decoder::open(&item.path, rate, channels, item.cue_in);
                        let _ = tx.send(Command::EmergencyOpened(id, item, decoder));
                    });
                match spawned {
                    Ok(_) => {
                        self.opening_emergencies.insert(id);
                    }
                    Err(e) => self.emit(StationEvent::Failed {
                        id,
                        reason: format!("cannot start a thread to open the emergency: {e}"),
                    }),
                }
            }
            Command::EmergencyOpened(id, item, decoder) => self.emergency(id, &item, decoder),
            Command::Live(id, live) => self.live(id, *live),
            Command::Shutdown => {}
        }
    }

    /// Cuts the emergency in at the first frame not yet handed over.
    fn emergency(&mut self, id: u64, item: &Item, decoder: Result<Decoder, EngineError>) {
        if !self.opening_emergencies.remove(&id) {
            // Stopped while it was being opened.
            return;
        }
        let decoder = match decoder {
            Ok(d) => d,
            Err(e) => {
                self.emit(StationEvent::Failed {
                    id,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let at = self
            .held
            .front()
            .map_or(self.mixer.position(), |(start, _)| *start);
        let cut = frames_of(CUT, self.rate);
        for other in self.cut_in.ids() {
            self.cut_in.fade_out(other, at, cut);
        }
        if self.cut_in.pending() == 0 {
            self.cut_in.advance_to(at);
        }
        // What was on air stays off; the controller decides what resumes.
        for sounding in self.sounding.clone() {
            self.mixer.fade_out(sounding, self.mixer.position(), cut);
        }
        let mut placement = placement_for(item, self.rate, self.target);
        placement.start = at;
        self.cut_in_from = at;
        self.meta.insert(id, item.meta.clone());
        self.item_lufs.insert(id, item.lufs);
        self.scheduled_start.insert(id, at);
        if item.cue_out.is_none() {
            self.open_ended.insert(id);
        }
        self.emergencies.insert(id);
        self.cut_in.place(id, placement, Box::new(decoder));
    }

    /// Places a live source at the first frame not yet mixed.
    fn live(&mut self, id: u64, live: LiveItem) {
        let at = self.mixer.position();
        let mut placement = crate::mix::Placement::new(at, u64::MAX);
        placement.fade_in = frames_of(Duration::from_secs_f64(live.fade_in.max(0.0)), self.rate);
        self.meta.insert(id, live.meta);
        self.item_lufs.insert(id, None);
        self.scheduled_start.insert(id, at);
        self.open_ended.insert(id);
        self.mixer.place(id, placement, live.source);
        if let Some((at, frames)) = self.fades.remove(&id) {
            self.mixer.fade_out(id, at, frames);
        }
    }

    fn cancel(&mut self, id: u64) {
        self.fades.remove(&id);
        if self.opening_emergencies.remove(&id) {
            self.emit(StationEvent::Cancelled { id });
            return;
        }
        let cut = frames_of(CUT, self.rate);
        if self.cut_in.fade_out(id, self.cut_in.position(), cut)
            || self.mixer.fade_out(id, self.mixer.position(), cut)
        {
            return;
        }
        if let Some(start) = self.scheduled_start.get(&id).copied()
            && self.items.remove(&(start, id)).is_some()
        {
            self.forget(id);
            self.emit(StationEvent::Cancelled { id });
        }
    }

    fn forget(&mut self, id: u64) {
        self.meta.remove(&id);
        self.item_lufs.remove(&id);
        self.scheduled_start.remove(&id);
        self.open_ended.remove(&id);
        self.sounding.remove(&id);
        self.emergencies.remove(&id);
    }

    /// Hands the loader every item due within the preload horizon.
    fn request_loads(&mut self, loader: &Loader) {
        let horizon = self.mixer.position() + self.preload + self.lead;
        let due: Vec<(u64, u64)> = self
            .items
            .range(..=(horizon, u64::MAX))
            .filter(|(_, slot)| matches!(slot, Slot::Waiting(_)))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(Slot::Waiting(item)) = self.items.remove(&key) {
                let _ = loader.requests.send((key.1, item));
                self.items.insert(key, Slot::Opening);
            }
        }
    }

    fn opened(&mut self, id: u64, item: Box<Item>, decoder: Opened) {
        let Some(&start) = self.scheduled_start.get(&id) else {
            return;
        };
        if self.items.remove(&(start, id)).is_none() {
            // Cancelled while it was being opened.
            return;
        }
        match decoder {
            Ok(decoder) => {
                let mut placement = placement_for(&item, self.rate, self.target);
                // Late (the file took long to open): it starts now, from its beginning.
                placement.start = placement.start.max(self.mixer.position());
                self.mixer.place(id, placement, decoder);
                if let Some((at, frames)) = self.fades.remove(&id) {
                    self.mixer.fade_out(id, at, frames);
                }
            }
            Err(e) => {
                self.fades.remove(&id);
                self.emit(StationEvent::Failed {
                    id,
                    reason: e.to_string(),
                });
            }
        }
    }

    fn mix_events(&mut self, events: Vec<MixEvent>, emergency: bool) {
        for event in events {
            match event {
                MixEvent::Started { id, frame } => {
                    let planned = self.scheduled_start.get(&id).copied().unwrap_or(frame);
                    self.on_air = Some((id, frame));
                    if !emergency {
                        self.sounding.insert(id);
                    }
                    // As in render: an item of known loudness arrives at the target by its
                    // own gain, so the normalizer holds; one of unknown loudness is measured.
                    let known = self.item_lufs.get(&id).copied().flatten();
                    self.signals
                        .push_back((frame, Signal::Loudness(known.and(self.target))));
                    if let Some(Some(meta)) = self.meta.get(&id) {
                        self.signals.push_back((frame, Signal::Title(meta.clone())));
                    }
                    self.emit(StationEvent::Started {
                        id,
                        at: self.seconds(frame),
                        late: self.seconds(frame.saturating_sub(planned)),
                    });
                }
                MixEvent::Ended { id, frame } => {
                    self.forget(id);
                    if self.on_air.is_some_and(|(k, _)| k == id) {
                        self.on_air = None;
                    }
                    self.emit(StationEvent::Ended {
                        id,
                        at: self.seconds(frame),
                    });
                }
                MixEvent::Failed { id, reason, .. } => {
                    self.emit(StationEvent::Failed { id, reason });
                }
                // A file without cue-out simply ends; one with a cue-out that ends early is
                // reported, and the timeline stays.
                MixEvent::Short { id, .. } if self.open_ended.contains(&id) => {}
                MixEvent::Short { id, frame, missing } => self.emit(StationEvent::Failed {
                    id,
                    reason: format!(
                        "ended {:.3} s early at {:.3} s (truncated?)",
                        self.seconds(missing),
                        self.seconds(frame)
                    ),
                }),
            }
        }
    }

    /// Meter readings, silence and problems from the pipeline.
    fn bus(&mut self) {
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Element(e) => {
                    let Some(s) = e.structure() else { continue };
                    if s.name() == crate::METER_MESSAGE {
                        let get = |f: &str| s.get::<f64>(f).unwrap_or(f64::NEG_INFINITY);
                        self.loudness = Some(Loudness {
                            momentary: get("momentary"),
                            short_term: get("short-term"),
                            integrated: get("integrated"),
                            range: s.get::<f64>("loudness-range").unwrap_or(0.0),
                            true_peak: get("true-peak"),
                        });
                    } else if s.name() == crate::SILENCE_MESSAGE
                        && let Ok(silent) = s.get::<bool>("silent")
                    {
                        self.emit(StationEvent::Silence { silent });
                    }
                }
                gst::MessageView::Warning(w) => {
                    self.emit(StationEvent::Warning(w.error().to_string()));
                }
                gst::MessageView::Error(e) => {
                    let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    self.emit(StationEvent::Warning(format!("{from}: {}", e.error())));
                }
                _ => {}
            }
        }
    }

    fn output_changes(&mut self) {
        let mut changed = Vec::new();
        let mut warnings = Vec::new();
        for (_, group) in &self.groups {
            for output in lock(group).iter() {
                let health = output.health();
                let now = (health.state, health.warnings);
                let before = self.output_states.insert(health.name.clone(), now);
                if before.map(|(_, w)| w) < Some(health.warnings)
                    && let Some(w) = &health.last_warning
                {
                    warnings.push(format!("output {}: {w}", health.name));
                }
                if before.map(|(state, _)| state) != Some(health.state) {
                    changed.push(health);
                }
            }
        }
        for health in changed {
            self.emit(StationEvent::Output(health));
        }
        for warning in warnings {
            self.emit(StationEvent::Warning(warning));
        }
    }

    fn telemetry(&mut self) -> Telemetry {
        let frames = self.mixer.position();
        let now = self.wall_frame();
        Telemetry {
            clock: self.started.elapsed().as_secs_f64(),
            frames,
            buffer_depth: frames as i64 - now as i64,
            underruns: self.underruns,
            queued: self.queued_frames(),
            dropouts: self.dropouts,
            loudness: self.loudness,
            outputs: self
                .groups
                .iter()
                .flat_map(|(_, g)| lock(g).iter().map(Output::health).collect::<Vec<_>>())
                .collect(),
            on_air: self.on_air.map(|(id, from)| OnAir {
                id,
                meta: self.meta.get(&id).cloned().flatten(),
                position: self.seconds(frames.saturating_sub(from)),
            }),
            cpu_percent: self.cpu.percent(),
            emergency: self.cut_in.pending() > 0,
        }
    }
}
