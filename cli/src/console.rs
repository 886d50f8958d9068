//! Standard output and standard error that end quietly when their reader goes away
//! (`kelvin plan | head -1`): `println!` would panic there ("failed printing to stdout: Broken
//! pipe", exit 101). Every line the CLI prints goes through [`Console`].
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE instead of killing the
//! process as it kills `git` or `kubectl` (status 141 to the shell). Kelvin stops writing to
//! that stream, prints nothing about it, and exits with the code the command would have returned
//! anyway: the exit code of `plan --detailed-exitcode` keeps its meaning under `set -o pipefail`.
//! Any other write error (a full disk behind `> plan.txt`) is an error.

use std::io::{self, ErrorKind, Stderr, Stdout, Write};

use anyhow::{Context, Result};

/// A stream that is dropped once its reader has gone.
struct Stream<W: Write> {
    writer: Option<W>,
}

impl<W: Write> Stream<W> {
    fn new(writer: W) -> Self {
        Self {
            writer: Some(writer),
        }
    }

    /// Runs `write` unless the reader has gone; a broken pipe ends the stream, quietly.
    fn with(&mut self, write: impl FnOnce(&mut W) -> io::Result<()>) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        match write(writer) {
            Err(error) if error.kind() == ErrorKind::BrokenPipe => {
                self.writer = None;
                Ok(())
            }
            other => other,
        }
    }
}

/// The CLI's standard output and standard error. Standard output stays line-buffered (as
/// `println!` has it), so what goes to both streams of a terminal or `2>&1` stays in order.
pub struct Console {
    out: Stream<Stdout>,
    err: Stream<Stderr>,
}

impl Console {
    pub fn new() -> Self {
        Self {
            out: Stream::new(io::stdout()),
            err: Stream::new(io::stderr()),
        }
    }

    /// `text` on standard output, as is.
    pub fn print(&mut self, text: &str) -> Result<()> {
        self.out
            .with(|out| out.write_all(text.as_bytes()))
            .context("writing to standard output")
    }

    /// `line` and a newline on standard output.
    pub fn println(&mut self, line: &str) -> Result<()> {
        self.out
            .with(|out| {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            })
            .context("writing to standard output")
    }

    /// Whether standard output's reader has gone (what would be printed need not be made).
    pub fn out_closed(&self) -> bool {
        self.out.writer.is_none()
    }

    /// Writes out what standard output holds.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .with(|out| out.flush())
            .context("writing to standard output")
    }

    /// `line` and a newline on standard error. Standard error is where a failure would be
    /// reported, so a failure to write there is not reported anywhere: it ends the stream.
    pub fn eprintln(&mut self, line: &str) {
        // Stderr is unbuffered: each line goes out before the next is made.
        let written = self.err.with(|err| {
            let mut err = err.lock();
            err.write_all(line.as_bytes())?;
            err.write_all(b"\n")
        });
        if written.is_err() {
            self.err.writer = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that has gone after `room` bytes.
    struct Pipe {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.written.len() >= self.room {
                return Err(ErrorKind::BrokenPipe.into());
            }
            let n = bytes.len().min(self.room - self.written.len());
            self.written.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_ends_the_stream_quietly_and_other_errors_are_errors() {
        let mut stream = Stream::new(Pipe {
            written: Vec::new(),
            room: 4,
        });
        assert!(stream.with(|p| p.write_all(b"ab\n")).is_ok());
        assert!(
            stream.with(|p| p.write_all(b"cd\n")).is_ok(),
            "EPIPE is not an error"
        );
        assert!(stream.writer.is_none(), "the stream ended");
        assert!(stream.with(|_| panic!("not written after the end")).is_ok());

        let mut stream = Stream::new(Vec::new());
        let full = stream.with(|_| Err(io::Error::new(ErrorKind::StorageFull, "disk full")));
        assert_eq!(full.map_err(|e| e.kind()), Err(ErrorKind::StorageFull));
        assert!(stream.writer.is_some());
    }
}
