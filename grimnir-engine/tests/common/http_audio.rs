//! Audio over HTTP for the tests: MP3 made by ffmpeg, served as an ICY stream in real time
//! by a loopback server that can be killed.
#![allow(dead_code)] // each test file uses part of it

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// 128 kbit/s MP3.
const BYTES_PER_SECOND: usize = 16_000;

/// `seconds` of a sine as a 128 kbit/s MP3, made by ffmpeg.
pub(crate) fn mp3(path: &Path, freq: u32, seconds: u32) -> Vec<u8> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={freq}:sample_rate=44100:duration={seconds}"
        ))
        .args([
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-f",
            "mp3",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg is needed");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

/// An HTTP server on loopback streaming `audio` as an ICY stream in real time (after a 1 s
/// burst), to one listener at a time, until it is killed: then it closes its connections
/// and stops listening.
pub(crate) struct Server {
    port: u16,
    alive: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(audio: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Server::on(listener, audio)
    }

    pub(crate) fn on(listener: TcpListener, audio: Vec<u8>) -> Server {
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&alive);
        let thread = std::thread::spawn(move || {
            let audio = Arc::new(audio);
            let mut streams = Vec::new();
            while flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let audio = Arc::clone(&audio);
                        let flag = Arc::clone(&flag);
                        streams.push(std::thread::spawn(move || {
                            conn.set_nonblocking(false).unwrap();
                            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                            let mut head = [0u8; 2048];
                            let _ = conn.read(&mut head);
                            let _ = conn.write_all(
                                b"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: Test FM\r\n\r\n",
                            );
                            let mut sent = BYTES_PER_SECOND.min(audio.len());
                            if conn.write_all(&audio[..sent]).is_err() {
                                return;
                            }
                            let step = BYTES_PER_SECOND / 10;
                            while flag.load(Ordering::Relaxed) && sent < audio.len() {
                                std::thread::sleep(Duration::from_millis(100));
                                let end = (sent + step).min(audio.len());
                                if conn.write_all(&audio[sent..end]).is_err() {
                                    return;
                                }
                                sent = end;
                            }
                            // Killed: the connection closes here.
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            for s in streams {
                let _ = s.join();
            }
        });
        Server {
            port,
            alive,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mp3", self.port)
    }

    pub(crate) fn kill(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address nothing listens on.
pub(crate) fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/stream.mp3")
}
