//! Transparent huge pages for the session's memory.
//!
//! ONNX Runtime's arena keeps its chunks (about 0.9 GB for five cameras at half size) for
//! the life of the session, and every layer streams its activations through them. Where
//! transparent huge pages are `madvise`-only (the usual default, and this project's
//! machines), those chunks are backed by 4 KiB pages; backing them with 2 MiB pages made the
//! same session 3-7% faster here (`scenetok bench image --no-huge-pages` shows the
//! difference). glibc does this for every large allocation under
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, but a tunable must be set before the process
//! starts; this does it from inside, once the arena has grown to what a batch needs.

/// What [`promote_large_mappings`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HugePages {
    /// Mappings marked for huge pages.
    pub mappings: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Mappings whose existing pages were collapsed into huge pages at once.
    pub collapsed: usize,
}

/// Private anonymous read-write mappings (`[heap]` included) of at least `min_bytes` in a
/// `/proc/PID/maps` text, as `(start, length)`. Thread stacks (8 MiB at most by default)
/// stay out with `min_bytes` above that.
pub fn large_anonymous_mappings(maps: &str, min_bytes: usize) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms, _offset, _dev, inode) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let name = fields.next();
            if perms != "rw-p" || inode != "0" || !matches!(name, None | Some("[heap]")) {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            (b > a && b - a >= min_bytes).then_some((a, b - a))
        })
        .collect()
}

/// Marks every large private anonymous mapping of this process for transparent huge pages
/// (`MADV_HUGEPAGE`: later faults get 2 MiB pages) and collapses the pages already there
/// (`MADV_COLLAPSE`, Linux ≥ 6.1). Best effort: what the kernel refuses is skipped. Neither
/// call changes memory contents, so other threads may go on using the memory meanwhile.
#[cfg(target_os = "linux")]
pub fn promote_large_mappings(min_bytes: usize) -> HugePages {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return HugePages::default() };
    let mut done = HugePages::default();
    for (start, len) in large_anonymous_mappings(&maps, min_bytes) {
        let addr = start as *mut libc::c_void;
        // SAFETY: the range is a mapping of this process as the kernel listed it; advice
        // never changes its contents, and a range unmapped meanwhile only makes the call
        // fail (ENOMEM), which is ignored.
        if unsafe { libc::madvise(addr, len, libc::MADV_HUGEPAGE) } != 0 {
            continue;
        }
        done.mappings += 1;
        done.bytes += len;
        // SAFETY: as above.
        if unsafe { libc::madvise(addr, len, libc::MADV_COLLAPSE) } == 0 {
            done.collapsed += 1;
        }
    }
    done
}

/// No transparent huge pages to ask for off Linux.
#[cfg(not(target_os = "linux"))]
pub fn promote_large_mappings(_min_bytes: usize) -> HugePages {
    HugePages::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_private_anonymous_writable_mappings_are_taken() {
        let maps = "\
55d0c0a00000-55d0c4a00000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0004000000 rw-p 00000000 00:00 0 
7f0004000000-7f0008000000 r--p 00000000 00:00 0 
7f0008000000-7f000c000000 rw-s 00000000 00:05 1234                       /dev/shm/x
7f000c000000-7f0010000000 rw-p 00001000 08:01 998877                     /usr/lib/libonnxruntime.so
7f0010000000-7f0010800000 rw-p 00000000 00:00 0 
7ffc00000000-7ffc04000000 rw-p 00000000 00:00 0                          [stack]
garbage line
";
        let got = large_anonymous_mappings(maps, 16 << 20);
        assert_eq!(got, vec![(0x55d0c0a00000, 64 << 20), (0x7f0000000000, 64 << 20)]);
        // The 8 MiB one (a thread stack's size) only below its size.
        assert_eq!(large_anonymous_mappings(maps, 8 << 20).len(), 3);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn promoting_keeps_the_contents() {
        let v: Vec<u64> = (0..(12u64 << 20)).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let done = promote_large_mappings(64 << 20);
        // A kernel built without transparent huge pages refuses the advice.
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            assert!(done.mappings >= 1 && done.bytes >= v.len() * 8, "{done:?}");
        }
        assert!(v.iter().enumerate().all(|(i, x)| *x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    }
}
