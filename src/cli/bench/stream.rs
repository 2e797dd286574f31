//! `scenetok bench stream`: a full-size generated segment replayed (looped) at 10 Hz into a
//! `scenetok serve` child process for a set time: frames processed, dropped and rejected,
//! latency per stage and in all, the server's resident memory over the run and its CPU use.
//! The server runs in its own process so its memory and CPU are its own; the sender (this
//! process) holds the segment in memory and only sends.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use scenetok::sim::generate::{GenerateConfig, Preset as WorldPreset, generate};
use scenetok::stream::StatsReport;
use scenetok::stream::replay::{Rate, ReplayOptions, ReplaySummary, connect, replay};

#[derive(clap::Args)]
pub struct Args {
    /// A v2 dataset (default: one generated full-size segment in the work folder).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Frames of the generated segment (looped).
    #[arg(long, default_value_t = 50)]
    frames: usize,
    #[arg(long, default_value = "runs/bench-stream")]
    work: PathBuf,
    /// Seconds of replay.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Replay speed (1.0 = the timestamps' 10 Hz).
    #[arg(long, default_value = "1.0")]
    rate: Rate,
    /// Arguments for `scenetok serve` (e.g. `--preset full`), after `--`.
    #[arg(last = true)]
    serve: Vec<String>,
}

/// The server process's memory and CPU at one moment.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    seconds: f64,
    rss_mb: f64,
    cpu_seconds: f64,
}

fn sample(pid: u32, t0: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(Sample { seconds: t0.elapsed().as_secs_f64(), rss_mb: rss_kb / 1024.0, cpu_seconds: ticks / hz.max(1.0) })
}

fn dataset(args: &Args) -> Result<PathBuf> {
    if let Some(d) = &args.data {
        return Ok(d.clone());
    }
    let d = args.work.join(format!("full-{}", args.frames));
    if !d.join("scenetok_manifest.json").exists() {
        let cfg = GenerateConfig {
            segments: 1,
            frames: args.frames,
            seed: 2200,
            ..GenerateConfig::preset(WorldPreset::Full)
        };
        generate(&d, &cfg, |_, _| {})?;
    }
    Ok(d)
}

fn start_server(args: &Args) -> Result<(Child, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--stats-every", "0"])
        .args(&args.serve)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = std::io::BufReader::new(child.stdout.take().context("server stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let addr =
        line.trim().strip_prefix("listening on ").with_context(|| format!("scenetok serve said: {line}"))?.to_string();
    // The rest of its output is drained (the counters are read with the `stats` action).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok((child, addr))
}

async fn stats(addr: &str) -> Result<StatsReport> {
    use futures::StreamExt;
    let mut c = connect(addr).await?;
    let mut s = c.do_action(arrow_flight::Action { r#type: "stats".into(), body: Default::default() }).await?;
    let body = s.next().await.context("no stats")??;
    Ok(serde_json::from_slice(&body)?)
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let data = dataset(&args)?;
    let (mut child, addr) = start_server(&args)?;
    let pid = child.id();
    let t0 = Instant::now();
    let first = sample(pid, t0).context("server memory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let opts = ReplayOptions {
        rate: args.rate,
        looped: true,
        duration: Some(Duration::from_secs_f64(args.duration)),
        segment: None,
        frames: None,
    };
    let (sent, report, samples) = runtime.block_on(async {
        let client = connect(&addr).await?;
        let mut samples = vec![first];
        let send = tokio::spawn({
            let data = data.clone();
            async move { replay(&data, client, &opts).await }
        });
        let every = Duration::from_secs_f64((args.duration / 20.0).clamp(1.0, 30.0));
        while !send.is_finished() {
            tokio::time::sleep(every.min(Duration::from_millis(500))).await;
            if samples.last().is_none_or(|s| t0.elapsed().as_secs_f64() - s.seconds >= every.as_secs_f64()) {
                samples.extend(sample(pid, t0));
            }
        }
        let sent: ReplaySummary = send.await??;
        // Let the last frames finish (or time out) before the counters are read.
        let wait = Instant::now();
        let report = loop {
            let r = stats(&addr).await?;
            if r.frames_in_progress == 0 || wait.elapsed() > Duration::from_secs(10) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        samples.extend(sample(pid, t0));
        anyhow::Ok((sent, report, samples))
    })?;
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait()?;
    let out = Report { data, serve: args.serve.join(" "), sent, report, samples, exit_ok: status.success() };
    std::fs::create_dir_all(&args.work)?;
    let json = args.work.join("stream.json");
    std::fs::write(&json, serde_json::to_string_pretty(&out)?)?;
    write!(stdout, "{}", out.text())?;
    writeln!(stdout, "written: {}", json.display())?;
    Ok(())
}

#[derive(serde::Serialize)]
struct Report {
    data: PathBuf,
    serve: String,
    sent: ReplaySummary,
    report: StatsReport,
    samples: Vec<Sample>,
    exit_ok: bool,
}

impl Report {
    fn text(&self) -> String {
        let r = &self.report;
        let secs = self.sent.seconds.max(1e-9);
        let mut s = format!(
            "scenetok bench stream: {} frames sent in {:.0} s ({:.2} Hz) to `scenetok serve {}`\n",
            self.sent.frames_sent,
            secs,
            self.sent.frames_sent as f64 / secs,
            self.serve
        );
        s += &format!(
            "frames: {} received = {} processed ({:.2} Hz, {} late) + {} dropped {:?} + {} rejected {:?} + {} in progress\n",
            r.frames_received,
            r.frames_processed,
            r.frames_processed as f64 / secs,
            r.frames_late,
            r.dropped(),
            r.frames_dropped,
            r.rejected(),
            r.frames_rejected,
            r.frames_in_progress
        );
        s += &format!("{:<12} {:>9} {:>9} {:>9} {:>9}\n", "latency (ms)", "p50", "p90", "p99", "max");
        let mut row = |name: &str, l: &scenetok::pipeline::LatencyStats| {
            s += &format!("{name:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n", l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms);
        };
        for (name, l) in &r.stages {
            row(name, l);
        }
        if let Some(a) = &r.assembly {
            row("assembly", a);
        }
        if let Some(q) = &r.queue_wait {
            row("queue wait", q);
        }
        if let Some(l) = &r.latency {
            row("arrived→out", l);
        }
        if let (Some(a), Some(b)) = (self.samples.first(), self.samples.last()) {
            let cores = (b.cpu_seconds - a.cpu_seconds) / (b.seconds - a.seconds).max(1e-9);
            let peak = self.samples.iter().map(|x| x.rss_mb).fold(0.0, f64::max);
            s += &format!(
                "server memory: {:.0} MB at start, {:.0} MB at the end (peak {:.0} MB); CPU {:.2} cores on average\n",
                a.rss_mb, b.rss_mb, peak, cores
            );
            let mid = &self.samples[self.samples.len() / 2];
            s += &format!(
                "  memory over the run (s: MB): {}\n",
                self.samples
                    .iter()
                    .map(|x| format!("{:.0}: {:.0}", x.seconds, x.rss_mb))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            s += &format!("  from the middle of the run to the end: {:+.0} MB\n", b.rss_mb - mid.rss_mb);
        }
        let p99 = r.latency.as_ref().map_or(f64::INFINITY, |l| l.p99_ms);
        let hz = r.frames_processed as f64 / secs;
        s += &format!(
            "goal (10 Hz, p99 ≤ 200 ms, no drops): {} (processed {hz:.2} Hz, p99 {p99:.0} ms, {} dropped); server exit {}\n",
            if hz >= 9.9 && p99 <= 200.0 && r.dropped() == 0 { "met" } else { "NOT met" },
            r.dropped(),
            if self.exit_ok { "0" } else { "FAILED" }
        );
        s
    }
}
