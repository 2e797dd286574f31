//! Reports: an evaluation run writes report.html (self-contained) and report.md, `scenetok
//! report` redraws them from the run folder and compares two runs, and headless Chromium
//! renders the page without console errors.

use std::path::Path;

use scenetok::eval::report::{browser, load_run, write_comparison, write_report};
use scenetok::eval::runner::{EvalReport, evaluate, load_scenarios, write_run};
use scenetok::models::motion::Baseline;
use scenetok::sim::generate::{GenerateConfig, Preset, generate};

fn runs(dir: &Path) -> (EvalReport, EvalReport) {
    let world = dir.join("world");
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    (cfg.segments, cfg.frames, cfg.seed, cfg.lidar_div, cfg.camera_div) = (1, 101, 5, [16, 64], 32);
    generate(&world, &cfg, |_, _| {}).unwrap();
    let scenarios = load_scenarios(&world, 10).unwrap();
    let cv = evaluate(&scenarios, Baseline::ConstantVelocity.predictor().as_ref(), "world").unwrap();
    let lf = evaluate(&scenarios, Baseline::LaneFollower.predictor().as_ref(), "world").unwrap();
    write_run(&dir.join("cv"), &cv).unwrap();
    write_run(&dir.join("lf"), &lf).unwrap();
    (cv, lf)
}

/// Every `http` in the page is an SVG namespace: nothing is fetched from anywhere.
fn assert_self_contained(html: &str) {
    for (i, _) in html.match_indices("http") {
        let rest = &html[i..];
        assert!(rest.starts_with("http://www.w3.org/"), "external reference: {}", &rest[..rest.len().min(80)]);
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains(" src="));
}

#[test]
fn runs_write_reports_that_render_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (cv, lf) = runs(dir.path());
    let html = std::fs::read_to_string(dir.path().join("lf/report.html")).unwrap();
    let md = std::fs::read_to_string(dir.path().join("lf/report.md")).unwrap();
    assert_self_contained(&html);
    // The tables carry the metrics.json numbers.
    for v in [lf.mean.min_ade, lf.mean.min_fde, lf.mean.miss_rate] {
        let s = format!("{v:.3}");
        assert!(html.contains(&s) && md.contains(&s), "{s} missing");
    }
    // Charts: 6 metrics by horizon, error vs horizon, trajectory types, 2 latency histograms,
    // and the example scenes (BEV).
    let svgs = html.matches("<svg").count();
    let scenes = lf.report_data.scenes.len();
    assert!((1..=4).contains(&scenes));
    assert_eq!(svgs, 6 + 1 + 1 + 2 + scenes, "inline SVG count");
    assert!(md.contains("| type | horizon | minADE |") && md.contains("**MEAN**"));
    for stage in ["model", "metrics"] {
        let l = lf.latency.iter().find(|l| l.stage == stage).unwrap();
        assert_eq!(l.stats.count, lf.scenarios);
        assert!(l.stats.p50_ms <= l.stats.p90_ms && l.stats.p90_ms <= l.stats.p99_ms);
    }
    assert_eq!(lf.trajectory_types.values().sum::<usize>(), lf.predicted_agents);

    // Redrawn from the folder alone: the same page.
    let (back, data) = load_run(&dir.path().join("lf")).unwrap();
    assert_eq!(back.mean, lf.mean);
    assert_eq!(data, lf.report_data);
    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    write_report(&again, &back, &data).unwrap();
    assert_eq!(std::fs::read_to_string(again.join("report.html")).unwrap(), html);

    // Side by side: both models, every delta, signs coloured by which way is better.
    let cmp = write_comparison(&dir.path().join("cmp"), ("cv", &cv), ("lf", &lf)).unwrap();
    let chtml = std::fs::read_to_string(&cmp).unwrap();
    assert_self_contained(&chtml);
    assert!(chtml.contains("constant-velocity") && chtml.contains("lane-follower"));
    let d = lf.mean.min_ade - cv.mean.min_ade;
    let cell = format!("{d:+.3}");
    assert!(chtml.contains(&cell), "ΔminADE {cell}");
    assert!(chtml.contains(if d < 0.0 { "class=\"better\">" } else { "class=\"worse\">" }));

    // A folder that is not a run is refused with its path named.
    let err = load_run(dir.path()).unwrap_err().to_string();
    assert!(err.contains("metrics.json") && err.contains("scenetok eval"), "{err}");

    // Headless Chromium: the page renders (ink, colours) and logs nothing to the console.
    if browser::find_chromium().is_none() {
        assert!(std::env::var_os("SCENETOK_REQUIRE_TOOLS").is_none(), "chromium missing: run tools/setup.sh");
        eprintln!("skipping the Chromium check: no chromium (tools/setup.sh installs it)");
        return;
    }
    let png = dir.path().join("report.png");
    let check = browser::check_page(&dir.path().join("lf/report.html"), &png, 1280, 2400).unwrap();
    assert!(check.console_errors.is_empty(), "{:?}", check.console_errors);
    assert!(check.ink > 0.03 && check.colours > 50, "blank page? ink {} colours {}", check.ink, check.colours);
    // The check is not vacuous: a script error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(&bad, "<html><body><p>x</p><script>undefinedFunction();</script></body></html>").unwrap();
    let check = browser::check_page(&bad, &dir.path().join("bad.png"), 400, 300).unwrap();
    assert!(check.console_errors.iter().any(|e| e.contains("undefinedFunction")), "{:?}", check.console_errors);
}
