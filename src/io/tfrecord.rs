//! TFRecord framing, the container of v1 `Frame`s and WOMD `Scenario`s.
//!
//! Each record is `u64 LE length`, `u32 LE masked CRC32C(length bytes)`, `data`,
//! `u32 LE masked CRC32C(data)`. Both checksums are verified: a flipped bit in a 2 GB
//! file must be an error naming the record, not a garbled protobuf three layers up.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};

const MASK_DELTA: u32 = 0xa282_ead8;

/// TensorFlow's masked CRC32C: the raw CRC is rotated and offset so that CRCs of data
/// that itself contains CRCs stay well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Streams records from any reader, verifying both checksums. Stops after the first error.
pub struct RecordReader<R> {
    inner: R,
    file: PathBuf,
    index: usize,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    /// `file` only names the source in errors.
    pub fn new(inner: R, file: impl AsRef<Path>) -> Self {
        RecordReader { inner, file: file.as_ref().to_path_buf(), index: 0, done: false }
    }

    fn at(&self) -> Location {
        Location::file(&self.file).record(self.index)
    }

    /// Reads the next record; `Ok(None)` at a clean end of file (between records).
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        let mut len_bytes = [0u8; 8];
        let got = read_full(&mut self.inner, &mut len_bytes).map_err(|e| Error::io(self.at(), e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < len_bytes.len() {
            return Err(self.truncated("the 8-byte length", 8, got as u64));
        }
        let mut crc_bytes = [0u8; 4];
        let got = read_full(&mut self.inner, &mut crc_bytes).map_err(|e| Error::io(self.at(), e))?;
        if got < crc_bytes.len() {
            return Err(self.truncated("the 4-byte length CRC", 4, got as u64));
        }
        let len = u64::from_le_bytes(len_bytes);
        let stored = u32::from_le_bytes(crc_bytes);
        let computed = masked_crc32c(&len_bytes);
        if stored != computed {
            return Err(Error::decode(
                self.at(),
                "TFRecord",
                format!(
                    "length CRC mismatch (length field says {len} bytes): stored masked CRC32C \
                     {stored:#010x}, expected {computed:#010x}"
                ),
            ));
        }
        // `take` + `read_to_end` grows the buffer with the data actually present, so a
        // truncated file cannot make us allocate the full (authentic but absent) length.
        let mut data = Vec::new();
        let got = (&mut self.inner).take(len).read_to_end(&mut data).map_err(|e| Error::io(self.at(), e))?;
        if (got as u64) < len {
            return Err(self.truncated("the data", len, got as u64));
        }
        let mut footer = [0u8; 4];
        let got = read_full(&mut self.inner, &mut footer).map_err(|e| Error::io(self.at(), e))?;
        if got < footer.len() {
            return Err(self.truncated("the 4-byte data CRC", 4, got as u64));
        }
        let stored = u32::from_le_bytes(footer);
        let computed = masked_crc32c(&data);
        if stored != computed {
            return Err(Error::decode(
                self.at(),
                "TFRecord",
                format!(
                    "data CRC mismatch over {len} bytes: stored masked CRC32C {stored:#010x}, \
                     expected {computed:#010x} (the record is corrupt)"
                ),
            ));
        }
        self.index += 1;
        Ok(Some(data))
    }

    fn truncated(&self, part: &str, expected: u64, got: u64) -> Error {
        Error::decode(
            self.at(),
            "TFRecord",
            format!("truncated record: expected {expected} bytes of {part}, the file ends after {got}"),
        )
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_record().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Opens a TFRecord file for streaming.
pub fn open(path: impl AsRef<Path>) -> Result<RecordReader<BufReader<File>>> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| Error::io(Location::file(path), e))?;
    Ok(RecordReader::new(BufReader::new(f), path))
}

/// Records decoded into messages one at a time, each error located at its record.
pub struct DecodedRecords<R, T> {
    records: RecordReader<R>,
    file: PathBuf,
    index: usize,
    decode: fn(&[u8], &Location) -> Result<T>,
}

impl<R: Read, T> DecodedRecords<R, T> {
    /// Decodes the records of any reader; `file` only names the source in errors.
    pub fn new(inner: R, file: impl AsRef<Path>, decode: fn(&[u8], &Location) -> Result<T>) -> Self {
        let file = file.as_ref().to_path_buf();
        DecodedRecords { records: RecordReader::new(inner, &file), file, index: 0, decode }
    }
}

impl<T> DecodedRecords<BufReader<File>, T> {
    /// Opens a file for streaming decoding.
    pub fn open(path: impl AsRef<Path>, decode: fn(&[u8], &Location) -> Result<T>) -> Result<Self> {
        let path = path.as_ref();
        Ok(DecodedRecords { records: open(path)?, file: path.to_path_buf(), index: 0, decode })
    }
}

impl<R: Read, T> Iterator for DecodedRecords<R, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = match self.records.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        let at = Location::file(&self.file).record(self.index);
        self.index += 1;
        Some((self.decode)(&bytes, &at))
    }
}

/// Reads every record of a file into memory.
pub fn read_records(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>> {
    open(path)?.collect()
}

/// Writes records with both checksums.
pub struct RecordWriter<W: Write> {
    inner: W,
    file: PathBuf,
    index: usize,
}

impl<W: Write> RecordWriter<W> {
    /// `file` only names the destination in errors.
    pub fn new(inner: W, file: impl AsRef<Path>) -> Self {
        RecordWriter { inner, file: file.as_ref().to_path_buf(), index: 0 }
    }

    pub fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let at = Location::file(&self.file).record(self.index);
        self.inner.write_all(&frame_record(data)).map_err(|e| Error::io(at, e))?;
        self.index += 1;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.inner.flush().map_err(|e| Error::io(Location::file(&self.file), e))?;
        Ok(self.inner)
    }
}

/// Creates (or truncates) a TFRecord file.
pub fn create(path: impl AsRef<Path>) -> Result<RecordWriter<BufWriter<File>>> {
    let path = path.as_ref();
    let f = File::create(path).map_err(|e| Error::io(Location::file(path), e))?;
    Ok(RecordWriter::new(BufWriter::new(f), path))
}

/// Writes all `records` to a file at `path`, which an existing file is only replaced by once
/// complete.
pub fn write_records<I, B>(path: impl AsRef<Path>, records: I) -> Result<()>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let path = path.as_ref();
    let pending = super::output::PendingFile::new(path)?;
    let mut w = RecordWriter::new(BufWriter::new(pending.create()?), path);
    for r in records {
        w.write_record(r.as_ref())?;
    }
    w.finish()?;
    pending.commit()
}

/// One record with its framing, as bytes.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Like `read_exact`, but reports how many bytes were read before end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        RecordReader::new(bytes, "mem.tfrecord").collect()
    }

    #[test]
    #[allow(clippy::manual_rotate)] // spelled out as TensorFlow documents it
    fn masked_crc_matches_tensorflow() {
        // CRC32C("123456789") = 0xe3069283 is the standard check value; masking is then
        // rotate-right-15 plus the delta.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let c: u32 = 0xe306_9283;
        assert_eq!(masked_crc32c(b"123456789"), ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn round_trip_several_records() {
        let recs: Vec<Vec<u8>> = vec![b"".to_vec(), b"hello".to_vec(), vec![7u8; 1000]];
        let mut bytes = Vec::new();
        for r in &recs {
            bytes.extend(frame_record(r));
        }
        assert_eq!(read_all(&bytes).expect("valid"), recs);
        assert!(read_all(&[]).expect("empty file").is_empty());
    }

    #[test]
    fn corrupt_length_crc_and_data_crc_are_named() {
        let good = frame_record(b"abcdef");
        let mut bad_len = [frame_record(b"x"), good.clone()].concat();
        let second = frame_record(b"x").len();
        bad_len[second + 8] ^= 1;
        let err = read_all(&bad_len).expect_err("length CRC");
        let msg = err.to_string();
        assert!(msg.contains("record 1") && msg.contains("length CRC"), "{msg}");

        let mut bad_data = good.clone();
        bad_data[14] ^= 0x80;
        let msg = read_all(&bad_data).expect_err("data CRC").to_string();
        assert!(msg.contains("record 0") && msg.contains("data CRC"), "{msg}");
    }

    #[test]
    fn truncation_is_reported_at_every_stage() {
        let good = frame_record(b"abcdef");
        for cut in [5, 12, 15, good.len() - 2] {
            let msg = read_all(&good[..cut]).expect_err("truncated").to_string();
            assert!(msg.contains("truncated") && msg.contains("record 0"), "cut {cut}: {msg}");
        }
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut bytes = frame_record(b"a");
        bytes[13] ^= 1;
        bytes.extend(frame_record(b"b"));
        let mut it = RecordReader::new(bytes.as_slice(), "m");
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
    }
}
