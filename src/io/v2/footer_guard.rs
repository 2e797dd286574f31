//! A bounded walk over a parquet footer before the parquet crate parses it.
//!
//! The footer is Thrift compact protocol. parquet 58's reader skips unknown fields element by
//! element, and a list of booleans takes no bytes per element when skipped: a footer of a few
//! kilobytes can declare lists of two billion elements each and keep the reader busy for hours
//! (found by fuzzing, `fuzz/regressions/v2_component/thrift-bool-list-hang`). In a well-formed
//! footer every list element takes at least one byte, so this walk refuses a list longer than
//! the bytes left and does work proportional to the footer's size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Location, Result};

/// How deep structs and lists may nest (parquet's own footer nests about six levels).
const MAX_DEPTH: usize = 64;

/// Checks the footer of the parquet file `file` (whose name is `at`). Files too short to have
/// a footer, or without the magic, pass: the parquet reader reports those itself.
pub fn check_footer(file: &File, at: &Location) -> Result<()> {
    let mut f = file;
    let io = |e| Error::io(at.clone(), e);
    let len = f.metadata().map_err(io)?.len();
    if len < 12 {
        return Ok(());
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" || footer_len + 8 > len {
        return Ok(());
    }
    let mut footer = vec![0u8; footer_len as usize];
    f.seek(SeekFrom::End(-8 - footer_len as i64)).map_err(io)?;
    f.read_exact(&mut footer).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut walk = Walk { buf: &footer, pos: 0 };
    walk.structure(0).map_err(|why| {
        Error::invalid(
            at.clone().detail("footer"),
            "a parquet footer (Thrift FileMetaData)",
            format!("{why} at byte {}", walk.pos),
        )
    })
}

/// A cursor over Thrift compact-protocol bytes.
struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
}

// Compact-protocol type codes.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

impl Walk<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("the footer ends inside a value")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!("a value of {n} bytes with {left} left"));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// A count of elements that each take at least one byte.
    fn count(&mut self, n: u64, what: &str) -> Result<u64, String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!("a {what} of {n} elements with {left} bytes left"));
        }
        Ok(n)
    }

    fn structure(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(());
            }
            if header >> 4 == 0 {
                self.varint()?; // the field id, written in full
            }
            match header & 0x0f {
                // A boolean field carries its value in the header.
                BOOL_TRUE | BOOL_FALSE => {}
                t => self.value(t, depth + 1)?,
            }
        }
    }

    fn value(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        match kind {
            BOOL_TRUE | BOOL_FALSE | BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(|_| ()),
            DOUBLE => self.skip(8),
            BINARY => {
                let n = self.varint()?;
                self.skip(n)
            }
            LIST | SET => {
                let header = self.byte()?;
                let n = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let n = self.count(n, "list")?;
                for _ in 0..n {
                    self.value(header & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                let n = self.count(n, "map")?;
                for _ in 0..n {
                    self.value(types >> 4, depth + 1)?;
                    self.value(types & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => self.structure(depth),
            other => Err(format!("unknown Thrift type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Result<(), String> {
        Walk { buf: bytes, pos: 0 }.structure(0)
    }

    #[test]
    fn accepts_compact_structs_lists_and_binaries() {
        // field 1: i32 7; field 2: list<binary> ["ab"]; field 3: struct { field 1: true }; stop
        let ok = [0x15, 14, 0x19, 0x18, 2, b'a', b'b', 0x1c, 0x11, 0x00, 0x00];
        assert_eq!(walk(&ok), Ok(()));
    }

    #[test]
    fn refuses_a_list_longer_than_the_bytes_left() {
        // field 1: list<bool> of 2^31 - 1 elements, then nothing
        let bad = [0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let why = walk(&bad).unwrap_err();
        assert!(why.contains("list of 2147483647 elements"), "{why}");
    }

    #[test]
    fn refuses_nesting_without_end_and_truncation() {
        let deep = vec![0x1c; 200];
        assert!(walk(&deep).unwrap_err().contains("nested deeper"));
        assert!(walk(&[0x15]).unwrap_err().contains("ends inside"));
    }
}
