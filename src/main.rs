//! The `scenetok` command: parse the arguments, run the subcommand ([`cli`]), print the
//! error if there is one.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// The sparse networks allocate and free feature maps of tens of MB per layer. glibc maps
/// each such block fresh (mmap) and unmaps it on free, so every page of every layer's output
/// faults on its first write (with a TLB shootdown across the worker threads): 10-15% of a
/// MinkUNet frame. Serving them from the heap and keeping freed memory there (up to 1 GiB)
/// reuses pages that are already mapped (`scenetok bench sparse`: fp32 width 1.0 ~15% faster).
fn keep_large_allocations_in_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    // A third-party decoder's panic on a bad file is reported as an error naming the file.
    scenetok::error::quiet_guarded_panics();
    keep_large_allocations_in_the_heap();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // `scenetok inspect … | head` closes the pipe early: not an error worth a word.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
