//! A size-rotated append-only file for the JSON-lines access log: `access.log` is renamed
//! to `access.log.1` (`.1` → `.2` …, the oldest past `keep` deleted) before a write would
//! take it past `max_bytes`. Only the access log's writer thread calls it, so rotation
//! never runs on a request's task.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// When to rotate and how many rotated files to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before a write would make it larger than this. A single line
    /// longer than this still goes, alone, into a fresh file.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` newest … `.keep` oldest); 0 keeps none.
    pub keep: u32,
}

/// The open log file and its size.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `access.log` + `.n`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    /// Opens (creating or appending to) `path`.
    pub fn open(path: impl Into<PathBuf>, rotation: Rotation) -> io::Result<RotatingFile> {
        let path = path.into();
        let (file, size) = open(&path)?;
        Ok(RotatingFile {
            path,
            rotation,
            file,
            size,
        })
    }

    /// Bytes in the current file (as this writer knows it).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `buf`, which holds whole `\n`-terminated lines; rotates between lines,
    /// never inside one.
    pub fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut rest = buf;
        while !rest.is_empty() {
            // The longest prefix of whole lines that still fits in the current file.
            let room = self.rotation.max_bytes.saturating_sub(self.size);
            let mut take = 0usize;
            for (i, b) in rest.iter().enumerate() {
                if *b == b'\n' {
                    if (i + 1) as u64 > room {
                        break;
                    }
                    take = i + 1;
                }
            }
            if take == 0 && rest.last() != Some(&b'\n') && (rest.len() as u64) <= room {
                take = rest.len(); // an unterminated tail that fits
            }
            if take == 0 {
                // Someone (logrotate's copytruncate) may have truncated the file.
                let actual = self.file.metadata()?.len();
                if actual < self.size {
                    self.size = actual;
                    continue;
                }
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                // An empty file and a line longer than the limit: it goes alone.
                take = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
            }
            self.file.write_all(&rest[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    /// Shifts `.1..keep` up by one (dropping the oldest), moves the current file to `.1`
    /// and starts an empty one.
    pub fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let keep = self.rotation.keep;
        if keep == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(numbered(&self.path, keep)).or_else(ignore_missing)?;
            for n in (1..keep).rev() {
                std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1))
                    .or_else(ignore_missing)?;
            }
            std::fs::rename(&self.path, numbered(&self.path, 1)).or_else(ignore_missing)?;
        }
        self.reopen()
    }

    /// Closes and reopens the path (after SIGHUP: an external tool moved the file away).
    pub fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = open(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where access log lines go: standard output (never rotated) or a rotating file.
pub enum Sink {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Sink {
    /// `-` / `stdout` for standard output, anything else is a file path.
    pub fn open(dest: &str, rotation: Rotation) -> io::Result<Sink> {
        Ok(match dest {
            "-" | "stdout" | "1" | "true" => Sink::Stdout(io::stdout()),
            path => Sink::File(RotatingFile::open(path, rotation)?),
        })
    }

    /// Writes whole lines and flushes.
    pub fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(o) => o.write_all(buf).and_then(|_| o.flush()),
            Sink::File(f) => f.write_lines(buf).and_then(|_| f.flush()),
        }
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(_) => Ok(()),
            Sink::File(f) => f.reopen(),
        }
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn line(i: usize) -> String {
        format!("{{\"n\":{i:04}}}\n") // 11 bytes
    }

    #[test]
    fn rotates_at_line_boundaries_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        let rot = Rotation {
            max_bytes: 50,
            keep: 3,
        };
        let mut f = RotatingFile::open(&p, rot).unwrap();
        // Batches of 3 lines (33 bytes) never fit twice: every file holds whole lines.
        let mut all = Vec::new();
        for b in 0..10 {
            let batch: String = (0..3).map(|i| line(b * 3 + i)).collect();
            all.push(batch.clone());
            f.write_lines(batch.as_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["access.log", "access.log.1", "access.log.2", "access.log.3"]
        );
        for n in ["access.log", "access.log.1", "access.log.2", "access.log.3"] {
            let text = read(&dir.path().join(n));
            assert!(text.len() <= 50, "{n} has {} bytes", text.len());
            assert!(text.ends_with('\n'), "{n} ends mid-line: {text:?}");
            assert!(text.lines().all(|l| l.len() == 10), "{n}: {text:?}");
        }
        // Newest last: .3 .2 .1 current hold the tail of what was written, in order.
        let kept: String = ["access.log.3", "access.log.2", "access.log.1", "access.log"]
            .iter()
            .map(|n| read(&dir.path().join(n)))
            .collect();
        let written: String = all.concat();
        assert!(
            written.ends_with(&kept),
            "kept files are not the newest lines in order"
        );
    }

    #[test]
    fn a_batch_is_split_between_lines_when_it_straddles_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = RotatingFile::open(
            &p,
            Rotation {
                max_bytes: 25,
                keep: 5,
            },
        )
        .unwrap();
        let batch: String = (0..5).map(line).collect(); // 55 bytes
        f.write_lines(batch.as_bytes()).unwrap();
        assert_eq!(read(&numbered(&p, 2)), format!("{}{}", line(0), line(1)));
        assert_eq!(read(&numbered(&p, 1)), format!("{}{}", line(2), line(3)));
        assert_eq!(read(&p), line(4));
        assert_eq!(f.size(), 11);
    }

    #[test]
    fn an_oversized_line_goes_alone_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = RotatingFile::open(
            &p,
            Rotation {
                max_bytes: 20,
                keep: 2,
            },
        )
        .unwrap();
        f.write_lines(line(1).as_bytes()).unwrap();
        let long = format!("{}\n", "x".repeat(40));
        f.write_lines(long.as_bytes()).unwrap();
        f.write_lines(line(2).as_bytes()).unwrap();
        assert_eq!(read(&numbered(&p, 2)), line(1));
        assert_eq!(read(&numbered(&p, 1)), long);
        assert_eq!(read(&p), line(2));
    }

    #[test]
    fn a_truncated_file_is_noticed_before_rotating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let rot = Rotation {
            max_bytes: 25,
            keep: 2,
        };
        let mut f = RotatingFile::open(&p, rot).unwrap();
        f.write_lines(format!("{}{}", line(0), line(1)).as_bytes())
            .unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap(); // copytruncate
        f.write_lines(line(2).as_bytes()).unwrap();
        assert_eq!(read(&p), line(2));
        assert!(!numbered(&p, 1).exists(), "no rotation of a truncated file");
    }

    #[test]
    fn keep_zero_keeps_no_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let rot = Rotation {
            max_bytes: 12,
            keep: 0,
        };
        let mut f = RotatingFile::open(&p, rot).unwrap();
        for i in 0..4 {
            f.write_lines(line(i).as_bytes()).unwrap();
        }
        assert_eq!(read(&p), line(3));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn reopen_follows_a_file_moved_away_and_counts_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, line(0)).unwrap();
        let rot = Rotation {
            max_bytes: 1000,
            keep: 2,
        };
        let mut f = RotatingFile::open(&p, rot).unwrap();
        assert_eq!(f.size(), 11, "appends to what is there");
        f.write_lines(line(1).as_bytes()).unwrap();
        // logrotate's `create` mode: rename, then SIGHUP.
        let moved = dir.path().join("a.log.moved");
        std::fs::rename(&p, &moved).unwrap();
        f.write_lines(line(2).as_bytes()).unwrap(); // still the old inode
        f.reopen().unwrap();
        assert_eq!(f.size(), 0);
        f.write_lines(line(3).as_bytes()).unwrap();
        assert_eq!(read(&moved), format!("{}{}{}", line(0), line(1), line(2)));
        assert_eq!(read(&p), line(3));
    }
}
