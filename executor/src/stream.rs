//! Event framing for execd streams and the stdout/stderr line splitter.

use bytes::Bytes;
use serde::Serialize;

/// One event of a command/session stream (`ServerStreamEvent`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<u64>,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventError {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Event {
    fn new(kind: &'static str, text: Option<String>) -> Self {
        Event {
            kind,
            text,
            execution_time: None,
            timestamp: now_ms(),
            error: None,
        }
    }
    pub fn init(id: &str) -> Self {
        Self::new("init", Some(id.to_string()))
    }
    pub fn stdout(text: String) -> Self {
        Self::new("stdout", Some(text))
    }
    pub fn stderr(text: String) -> Self {
        Self::new("stderr", Some(text))
    }
    pub fn ping() -> Self {
        Self::new("ping", Some("pong".to_string()))
    }
    pub fn complete(elapsed_ms: u64) -> Self {
        let mut ev = Self::new("execution_complete", None);
        ev.execution_time = (elapsed_ms > 0).then_some(elapsed_ms);
        ev
    }
    /// Terminal failure of a command: `evalue` carries the exit code (or an OS error text).
    pub fn exec_error(evalue: String, traceback: String) -> Self {
        let mut ev = Self::new("error", None);
        ev.error = Some(EventError {
            ename: "CommandExecError".to_string(),
            evalue,
            traceback: vec![traceback],
        });
        ev
    }
}

/// `{json}` followed by one blank line; no `data:` prefix (execd framing).
pub fn frame(ev: &Event) -> Bytes {
    let mut buf = serde_json::to_vec(ev).unwrap_or_default();
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// A `{code,message}` object written into an already-open stream (no trailing blank line).
pub fn midstream_error(code: &str, message: &str) -> Bytes {
    let body = serde_json::json!({"code": code, "message": message});
    Bytes::from(body.to_string())
}

/// Longest line kept in memory before it is flushed as its own event.
pub const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines as execd does: `\n`, `\r` and `\r\n` end a line; a
/// terminator with nothing pending yields the text `"\n"` (unless `drop_empty`); a partial
/// line is held until more data or `finish`. Lines longer than `max_line` are cut.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    after_cr: bool,
    drop_empty: bool,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(drop_empty: bool) -> Self {
        Self::with_max(drop_empty, MAX_LINE)
    }

    pub fn with_max(drop_empty: bool, max_line: usize) -> Self {
        LineSplitter {
            pending: Vec::new(),
            after_cr: false,
            drop_empty,
            max_line: max_line.max(4),
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<String>) {
        for &b in data {
            let was_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if was_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if self.pending.is_empty() {
                        if !self.drop_empty {
                            out.push("\n".to_string());
                        }
                    } else {
                        out.push(String::from_utf8_lossy(&self.pending).into_owned());
                        self.pending.clear();
                    }
                }
                _ => {
                    self.pending.push(b);
                    if self.pending.len() >= self.max_line {
                        self.flush_long(out);
                    }
                }
            }
        }
    }

    fn flush_long(&mut self, out: &mut Vec<String>) {
        // Hold back a trailing incomplete UTF-8 sequence so a character is not split.
        let len = self.pending.len();
        let mut cut = len;
        for back in 1..=3.min(len - 1) {
            let b = self.pending[len - back];
            if b & 0xC0 == 0x80 {
                continue;
            }
            if b >= 0xC0 {
                let need = if b >= 0xF0 {
                    4
                } else if b >= 0xE0 {
                    3
                } else {
                    2
                };
                if need > back {
                    cut = len - back;
                }
            }
            break;
        }
        let rest = self.pending.split_off(cut);
        out.push(String::from_utf8_lossy(&self.pending).into_owned());
        self.pending = rest;
    }

    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            out.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], drop_empty: bool) -> Vec<String> {
        let mut s = LineSplitter::new(drop_empty);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn reference_example() {
        assert_eq!(
            split(&[b"a\n\nb\n\n\nc\n"], false),
            vec!["a", "\n", "b", "\n", "\n", "c"]
        );
        assert_eq!(split(&[b"hi\n"], false), vec!["hi"]);
    }

    #[test]
    fn crlf_counts_once_even_across_chunks() {
        assert_eq!(split(&[b"a\r", b"\nb\r\n"], false), vec!["a", "b"]);
        assert_eq!(split(&[b"a\r\rb"], false), vec!["a", "\n", "b"]);
    }

    #[test]
    fn partial_line_is_held_until_finish() {
        let mut s = LineSplitter::new(false);
        let mut out = Vec::new();
        s.push(b"par", &mut out);
        assert!(out.is_empty());
        s.push(b"tial\nx", &mut out);
        assert_eq!(out, vec!["partial"]);
        s.finish(&mut out);
        assert_eq!(out, vec!["partial", "x"]);
    }

    #[test]
    fn drop_empty_for_sessions() {
        assert_eq!(split(&[b"a\n\n\nb\n"], true), vec!["a", "b"]);
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        let mut s = LineSplitter::with_max(false, 8);
        let mut out = Vec::new();
        s.push("abcdefgé12\n".as_bytes(), &mut out);
        assert_eq!(out.concat(), "abcdefgé12");
        assert!(out.iter().all(|l| !l.contains('\u{FFFD}')));
    }

    #[test]
    fn frame_is_compact_json_plus_blank_line() {
        let mut ev = Event::init("abc");
        ev.timestamp = 5;
        assert_eq!(
            &frame(&ev)[..],
            b"{\"type\":\"init\",\"text\":\"abc\",\"timestamp\":5}\n\n"
        );
        let mut c = Event::complete(0);
        c.timestamp = 1;
        assert_eq!(
            &frame(&c)[..],
            b"{\"type\":\"execution_complete\",\"timestamp\":1}\n\n"
        );
        let mut e = Event::exec_error("3".into(), "exit status 3".into());
        e.timestamp = 2;
        assert_eq!(
            &frame(&e)[..],
            &b"{\"type\":\"error\",\"timestamp\":2,\"error\":{\"ename\":\"CommandExecError\",\"evalue\":\"3\",\"traceback\":[\"exit status 3\"]}}\n\n"[..]
        );
    }
}
