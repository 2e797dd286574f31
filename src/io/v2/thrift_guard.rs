//! Bounded walks over a parquet file's Thrift structures before the parquet crate parses them.
//!
//! The footer and every page header are Thrift compact protocol. parquet 58's reader skips
//! unknown fields element by element, and a list of booleans takes no bytes per element when
//! skipped: a footer or page header of a few kilobytes can declare lists of two billion
//! elements each and keep the reader busy for hours (found by fuzzing,
//! `fuzz/regressions/v2_component/thrift-bool-list-hang`; the page-header form,
//! `page-header-bool-list-hang`, by reading the crate). In a well-formed structure every list
//! element takes at least one byte, so these walks refuse a list longer than the bytes left and
//! do work proportional to the bytes they cover.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Location, Result};

/// How deep structs and lists may nest (parquet's own footer nests about six levels).
const MAX_DEPTH: usize = 64;

/// The first read of a page header; a larger header (big statistics) is read again whole.
const FIRST_HEADER_READ: u64 = 4096;

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
    walk.structure(0).map_err(|fault| {
        Error::invalid(
            at.clone().detail("footer"),
            "a parquet footer (Thrift FileMetaData)",
            format!("{} at byte {}", fault.why(), walk.pos),
        )
    })
}

/// One column chunk's bytes: where its first page starts and how many bytes its pages take
/// (headers included), as its metadata says.
#[derive(Debug, Clone, Copy)]
pub struct ChunkExtent {
    pub start: u64,
    pub len: u64,
}

/// Walks the page headers of row group `group`'s column chunks in `chunks`, each with its
/// column's name (pages are a header followed by `compressed_page_size` bytes). A header the
/// walk refuses is an error naming the file `at`, the column, the row group and the header's
/// offset. A chunk whose extent or pages do not add up is left to the
/// parquet reader, which reports it.
pub fn check_page_headers(
    file: &File,
    group: usize,
    chunks: impl IntoIterator<Item = (ChunkExtent, String)>,
    at: &Location,
) -> Result<()> {
    let mut f = file;
    let io = |e| Error::io(at.clone(), e);
    let file_len = f.metadata().map_err(io)?.len();
    let mut buf = Vec::new();
    for (chunk, column) in chunks {
        let Some(end) = chunk.start.checked_add(chunk.len).filter(|&end| end <= file_len) else {
            continue;
        };
        let mut pos = chunk.start;
        'pages: while pos < end {
            let rest = end - pos;
            let mut want = rest.min(FIRST_HEADER_READ);
            let (header_len, page_len) = loop {
                buf.resize(want as usize, 0);
                f.seek(SeekFrom::Start(pos)).map_err(io)?;
                f.read_exact(&mut buf).map_err(io)?;
                let mut walk = Walk { buf: &buf, pos: 0 };
                match walk.page_header() {
                    Ok(Some(page_len)) => break (walk.pos as u64, page_len),
                    // No page size: not a page header the parquet reader will accept either.
                    Ok(None) => break 'pages,
                    Err(Fault::Truncated(_) | Fault::Long(_)) if want < rest => want = rest.min(want * 16),
                    // A header running past its chunk: the parquet reader reports it.
                    Err(Fault::Truncated(_)) => break 'pages,
                    Err(fault) => {
                        return Err(Error::invalid(
                            at.clone().column(column).detail(format!("row group {group}, page header at byte {pos}")),
                            "a parquet page header (Thrift PageHeader)",
                            format!("{} at byte {} of the header", fault.why(), walk.pos),
                        ));
                    }
                }
            };
            pos += header_len + page_len;
        }
    }
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(())
}

/// Why a walk stopped.
#[derive(Debug, PartialEq)]
enum Fault {
    /// The bytes end inside a value.
    Truncated(String),
    /// A list or map declares more elements than there are bytes left.
    Long(String),
    /// Not compact protocol parquet could read (too deep, unknown type, overlong varint).
    Bad(String),
}

impl Fault {
    fn why(&self) -> &str {
        match self {
            Fault::Truncated(why) | Fault::Long(why) | Fault::Bad(why) => why,
        }
    }
}

type Walked<T> = std::result::Result<T, Fault>;

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
    fn byte(&mut self) -> Walked<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| Fault::Truncated("the bytes end inside a value".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Walked<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Fault::Bad("a varint longer than 10 bytes".into()))
    }

    fn skip(&mut self, n: u64) -> Walked<()> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(Fault::Truncated(format!("a value of {n} bytes with {left} left")));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// A count of elements that each take at least one byte.
    fn count(&mut self, n: u64, what: &str) -> Walked<u64> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(Fault::Long(format!("a {what} of {n} elements with {left} bytes left")));
        }
        Ok(n)
    }

    /// Walks one `PageHeader` struct and returns its `compressed_page_size` (field 3, an i32),
    /// or `None` when it has none or a negative one.
    fn page_header(&mut self) -> Walked<Option<u64>> {
        let mut field = 0i64;
        let mut page_len = None;
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(page_len);
            }
            field = match header >> 4 {
                0 => zigzag(self.varint()?),
                delta => field + i64::from(delta),
            };
            match (field, header & 0x0f) {
                (3, I32) => page_len = u64::try_from(zigzag(self.varint()?)).ok(),
                (_, BOOL_TRUE | BOOL_FALSE) => {}
                (_, t) => self.value(t, 1)?,
            }
        }
    }

    fn structure(&mut self, depth: usize) -> Walked<()> {
        if depth > MAX_DEPTH {
            return Err(Fault::Bad(format!("values nested deeper than {MAX_DEPTH}")));
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

    fn value(&mut self, kind: u8, depth: usize) -> Walked<()> {
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
            other => Err(Fault::Bad(format!("unknown Thrift type {other}"))),
        }
    }
}

/// Thrift compact protocol's signed integers.
fn zigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Walked<()> {
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
        match walk(&bad) {
            Err(Fault::Long(why)) => assert!(why.contains("list of 2147483647 elements"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_nesting_without_end_and_truncation() {
        let deep = vec![0x1c; 200];
        assert!(matches!(walk(&deep), Err(Fault::Bad(why)) if why.contains("nested deeper")));
        assert!(matches!(walk(&[0x15]), Err(Fault::Truncated(why)) if why.contains("end inside")));
    }

    #[test]
    fn finds_the_compressed_size_of_a_page_header() {
        // type DATA_PAGE, uncompressed 100, compressed 80, data_page_header { num_values 10 }
        let header = [0x15, 0x00, 0x15, 0xc8, 0x01, 0x15, 0xa0, 0x01, 0x2c, 0x15, 0x14, 0x00, 0x00, 0xff];
        let mut w = Walk { buf: &header, pos: 0 };
        assert_eq!(w.page_header(), Ok(Some(80)));
        assert_eq!(w.pos, header.len() - 1, "the walk ends after the header's stop byte");
        // the same header with a negative compressed size (zigzag 3 = -2)
        let negative = [0x15, 0x00, 0x15, 0xc8, 0x01, 0x15, 0x03, 0x00];
        assert_eq!(Walk { buf: &negative, pos: 0 }.page_header(), Ok(None));
        assert_eq!(zigzag(1), -1);
        assert_eq!(zigzag(4294967294), 2147483647);
    }
}
