//! `report.html` (self-contained: inline SVG, inline CSS, no scripts, no external resources)
//! and `report.md` for one run, and the side-by-side comparison of two runs. The page layout
//! is the templates in `viz/` (minijinja); this module builds what they show.

use std::path::Path;

use serde::Serialize;

use super::charts::{ChartError, bar_chart, bev_scene, histogram, line_chart};
use super::data::ReportData;
use crate::eval::motion::Breakdown;
use crate::eval::run::EvalReport;
use crate::models::motion::training::TrainingCurve;

const HTML_TEMPLATE: &str = include_str!("../../../viz/report.html.j2");
const MD_TEMPLATE: &str = include_str!("../../../viz/report.md.j2");

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("report template: {0}")]
    Template(#[from] minijinja::Error),
    #[error(transparent)]
    Data(#[from] crate::Error),
    #[error("{path}: {message}")]
    Run { path: String, message: String },
}

#[derive(Debug, Serialize)]
struct Cell {
    text: String,
    class: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Row {
    mean: bool,
    cells: Vec<Cell>,
}

#[derive(Debug, Serialize)]
struct Table {
    header: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Figure {
    svg: String,
    caption: String,
}

#[derive(Debug, Serialize, Default)]
struct Section {
    title: String,
    note: Option<String>,
    tables: Vec<Table>,
    figures: Vec<Figure>,
    legend: bool,
}

#[derive(Debug, Serialize)]
struct Page {
    title: String,
    summary: String,
    sections: Vec<Section>,
    version: &'static str,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell { text: text.into(), class: None }
}

/// A metric's name, how to read it from a breakdown, and whether higher is better.
type Metric = (&'static str, fn(&Breakdown) -> f64, bool);

/// The motion metrics in table order.
const METRICS: [Metric; 6] = [
    ("minADE", |b| b.min_ade, false),
    ("minFDE", |b| b.min_fde, false),
    ("MR", |b| b.miss_rate, false),
    ("OR", |b| b.overlap_rate, false),
    ("mAP", |b| b.map, true),
    ("softmAP", |b| b.soft_map, true),
];

fn seconds(step: usize) -> String {
    // Challenge measurement steps are 2 Hz indices: step s is (s + 1) / 2 seconds.
    if step == 0 { "all".into() } else { format!("{} s", (step + 1) as f64 / 2.0) }
}

fn short_type(t: &str) -> &str {
    t.strip_prefix("TYPE_").unwrap_or(t)
}

fn metrics_table(report: &EvalReport) -> Table {
    let mut header = vec!["type".to_string(), "horizon".to_string()];
    header.extend(METRICS.iter().map(|m| m.0.to_string()));
    let rows = report
        .breakdowns
        .iter()
        .filter(|b| report.object_types().contains(&b.object_type))
        .chain(std::iter::once(&report.mean))
        .map(|b| {
            let mut cells = vec![cell(short_type(&b.object_type)), cell(seconds(b.measurement_step))];
            cells.extend(METRICS.iter().map(|m| cell(format!("{:.3}", m.1(b)))));
            Row { mean: b.object_type == "MEAN", cells }
        })
        .collect();
    Table { header, rows }
}

fn latency_table(report: &EvalReport) -> Table {
    let header = ["stage", "count", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"].map(String::from).to_vec();
    let rows = report
        .latency
        .iter()
        .map(|s| Row {
            mean: false,
            cells: vec![
                cell(&s.stage),
                cell(s.stats.count.to_string()),
                cell(format!("{:.3}", s.stats.mean_ms)),
                cell(format!("{:.3}", s.stats.p50_ms)),
                cell(format!("{:.3}", s.stats.p90_ms)),
                cell(format!("{:.3}", s.stats.p99_ms)),
                cell(format!("{:.3}", s.stats.max_ms)),
            ],
        })
        .collect();
    Table { header, rows }
}

/// One chart per metric: its value by horizon, one line per object type.
fn metric_by_horizon(reports: &[(&str, &EvalReport)]) -> Result<Vec<Figure>, ChartError> {
    let mut figures = Vec::new();
    for (name, f, higher_better) in METRICS {
        let mut series = Vec::new();
        for (label, r) in reports {
            for t in r.object_types() {
                let pts: Vec<(f64, f64)> = r
                    .breakdowns
                    .iter()
                    .filter(|b| b.object_type == t)
                    .map(|b| ((b.measurement_step + 1) as f64 / 2.0, f(b)))
                    .collect();
                let series_name =
                    if reports.len() > 1 { format!("{label} {}", short_type(&t)) } else { short_type(&t).to_string() };
                series.push((series_name, pts));
            }
        }
        let better = if higher_better { "higher is better" } else { "lower is better" };
        figures.push(Figure {
            svg: line_chart(&format!("{name} by horizon"), "horizon (s)", name, &series)?,
            caption: format!("{name} per object type at 3, 5 and 8 s ({better})."),
        });
    }
    Ok(figures)
}

fn error_vs_horizon(reports: &[(&str, &EvalReport)]) -> Result<Figure, ChartError> {
    let mut series = Vec::new();
    for (label, r) in reports {
        for e in &r.step_errors {
            let name = if reports.len() > 1 {
                format!("{label} {}", short_type(&e.object_type))
            } else {
                short_type(&e.object_type).to_string()
            };
            series.push((
                name,
                e.seconds.iter().copied().zip(e.mean_min_de.iter().map(|v| v.unwrap_or(f64::NAN))).collect(),
            ));
        }
    }
    Ok(Figure {
        svg: line_chart("displacement error vs horizon", "horizon (s)", "mean min-over-modes error (m)", &series)?,
        caption: "Mean over agents of the smallest displacement error among the modes, at every 0.5 s step.".into(),
    })
}

fn render(page: &Page) -> Result<(String, String), ReportError> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", HTML_TEMPLATE)?;
    env.add_template("report.md", MD_TEMPLATE)?;
    let html = env.get_template("report.html")?.render(page)?;
    let md = env.get_template("report.md")?.render(page)?;
    Ok((html, md))
}

fn write(out: &Path, html: &str, md: &str) -> Result<std::path::PathBuf, ReportError> {
    let html_path = out.join("report.html");
    crate::io::output::write_file(&html_path, html.as_bytes())?;
    crate::io::output::write_file(&out.join("report.md"), md.as_bytes())?;
    Ok(html_path)
}

/// How the evaluated weights were trained: the loss per window of steps and the validation
/// errors, from the weights' own record.
fn training_section(curve: &TrainingCurve) -> Result<Section, ReportError> {
    // The first window (random weights, warm-up) is an order of magnitude above the rest and
    // would flatten the curve: it is named in the caption instead of drawn.
    let skip = usize::from(curve.loss.len() > 2);
    let loss: Vec<(f64, f64)> = curve.steps.iter().zip(&curve.loss).skip(skip).map(|(&s, &l)| (s as f64, l)).collect();
    let first = match (skip, curve.steps.first(), curve.loss.first()) {
        (1, Some(s), Some(l)) => format!(" The first {s} steps (mean {l:.3}) are left out of the drawing."),
        _ => String::new(),
    };
    let mut figures = vec![Figure {
        svg: line_chart("training loss", "step", "NLL + classification", &[("loss".to_string(), loss)])?,
        caption: format!("The training loss, each point the mean over the steps since the previous one.{first}"),
    }];
    if !curve.validation.is_empty() {
        let v = &curve.validation;
        let series = [
            ("minADE".to_string(), v.iter().map(|p| (p.step as f64, p.min_ade)).collect()),
            ("minFDE".to_string(), v.iter().map(|p| (p.step as f64, p.min_fde)).collect()),
        ];
        figures.push(Figure {
            svg: line_chart("validation error", "step", "metres (6 modes, 8 s)", &series)?,
            caption: "minADE and minFDE over the validation split during training.".into(),
        });
    }
    Ok(Section {
        title: "Training".into(),
        note: Some(format!("The weights were trained by `{}`.", curve.command)),
        figures,
        ..Default::default()
    })
}

/// The page of one run.
fn run_page(report: &EvalReport, data: &ReportData) -> Result<Page, ReportError> {
    let mut sections = Vec::new();
    sections.push(Section {
        title: "Motion metrics (WOMD challenge config)".into(),
        note: Some("minADE, minFDE, miss rate, overlap rate, mAP and soft mAP per object type and horizon, as upstream's motion_metrics computes them; the bold row is the mean over the types present.".into()),
        tables: vec![metrics_table(report)],
        figures: metric_by_horizon(&[("", report)])?,
        ..Default::default()
    });
    sections.push(Section {
        title: "Error vs horizon".into(),
        figures: vec![error_vs_horizon(&[("", report)])?],
        ..Default::default()
    });
    let types: Vec<(String, f64)> = report.trajectory_types.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    sections.push(Section {
        title: "Trajectory types of the agents to predict".into(),
        figures: vec![Figure {
            svg: bar_chart("trajectory types", "agents", &types)?,
            caption: "WOMD trajectory-type classification of the ground-truth futures.".into(),
        }],
        ..Default::default()
    });
    let mut latency_figures = Vec::new();
    for (stage, samples) in &data.latency_samples_ms {
        latency_figures.push(Figure {
            svg: histogram(&format!("{stage} latency"), "ms per scenario", samples, 20)?,
            caption: format!("{stage}: {} samples", samples.len()),
        });
    }
    sections.push(Section {
        title: "Latency per stage".into(),
        tables: vec![latency_table(report)],
        figures: latency_figures,
        ..Default::default()
    });
    let scenes = data
        .scenes
        .iter()
        .map(|s| {
            Ok(Figure {
                svg: bev_scene(s)?,
                caption: format!("{}: {} agent(s) predicted", s.scenario_id, s.agents.len()),
            })
        })
        .collect::<Result<Vec<_>, ChartError>>()?;
    sections.push(Section { title: "Example scenes".into(), figures: scenes, legend: true, ..Default::default() });
    if let Some(curve) = &data.training {
        sections.push(training_section(curve)?);
    }
    Ok(Page {
        title: report.model.clone(),
        summary: format!(
            "Model {} on {}: {} scenarios, {} agents predicted.",
            report.model, report.data, report.scenarios, report.predicted_agents
        ),
        sections,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Writes `report.html` and `report.md` of one run into `out`; returns the HTML path.
pub fn write_report(out: &Path, report: &EvalReport, data: &ReportData) -> Result<std::path::PathBuf, ReportError> {
    let (html, md) = render(&run_page(report, data)?)?;
    write(out, &html, &md)
}

/// Reads a run folder's `metrics.json` and `report_data.json`.
pub fn load_run(dir: &Path) -> Result<(EvalReport, ReportData), ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::Run {
            path: dir.display().to_string(),
            message: format!(
                "expected a run folder written by `scenetok eval`, found {}",
                if dir.exists() { "a file" } else { "nothing at this path" }
            ),
        });
    }
    let read = |name: &str| -> Result<String, ReportError> {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| ReportError::Run {
            path: p.display().to_string(),
            message: format!("cannot read ({e}); expected a run folder written by `scenetok eval`"),
        })
    };
    let parse_err = |name: &str, e: serde_json::Error| ReportError::Run {
        path: dir.join(name).display().to_string(),
        message: format!("not a scenetok {name}: {e}"),
    };
    let report: EvalReport = serde_json::from_str(&read("metrics.json")?).map_err(|e| parse_err("metrics.json", e))?;
    let data: ReportData = match dir.join("report_data.json").exists() {
        true => serde_json::from_str(&read("report_data.json")?).map_err(|e| parse_err("report_data.json", e))?,
        false => ReportData::default(),
    };
    Ok((report, data))
}

fn delta_cell(a: f64, b: f64, higher_better: bool) -> Cell {
    let d = b - a;
    let class = if d.abs() < 1e-12 {
        None
    } else if (d > 0.0) == higher_better {
        Some("better")
    } else {
        Some("worse")
    };
    Cell { text: format!("{d:+.3}"), class }
}

/// Writes `report.html` and `report.md` comparing run B against run A into `out`.
pub fn write_comparison(
    out: &Path,
    (name_a, a): (&str, &EvalReport),
    (name_b, b): (&str, &EvalReport),
) -> Result<std::path::PathBuf, ReportError> {
    let mut header = vec!["type".to_string(), "horizon".to_string()];
    for (m, _, _) in METRICS {
        header.extend([format!("{m} A"), format!("{m} B"), format!("Δ{m}")]);
    }
    let mut rows = Vec::new();
    let rows_b: Vec<&Breakdown> = b.breakdowns.iter().chain(std::iter::once(&b.mean)).collect();
    for ba in a.breakdowns.iter().chain(std::iter::once(&a.mean)) {
        let Some(bb) =
            rows_b.iter().find(|x| x.object_type == ba.object_type && x.measurement_step == ba.measurement_step)
        else {
            continue;
        };
        if ba.object_type != "MEAN" && !a.object_types().contains(&ba.object_type) {
            continue;
        }
        let mut cells = vec![cell(short_type(&ba.object_type)), cell(seconds(ba.measurement_step))];
        for (_, f, hb) in METRICS {
            cells.extend([cell(format!("{:.3}", f(ba))), cell(format!("{:.3}", f(bb))), delta_cell(f(ba), f(bb), hb)]);
        }
        rows.push(Row { mean: ba.object_type == "MEAN", cells });
    }
    let same_data = a.data == b.data && a.scenarios == b.scenarios;
    let note = format!(
        "A = {name_a} ({}, {} scenarios on {}); B = {name_b} ({}, {} scenarios on {}). Δ = B − A, green where B is better.{}",
        a.model,
        a.scenarios,
        a.data,
        b.model,
        b.scenarios,
        b.data,
        if same_data { "" } else { " The runs are on different data: compare with care." }
    );
    let reports = [("A", a), ("B", b)];
    let sections = vec![
        Section {
            title: "Motion metrics, side by side".into(),
            note: Some(note),
            tables: vec![Table { header, rows }],
            figures: metric_by_horizon(&reports)?,
            ..Default::default()
        },
        Section { title: "Error vs horizon".into(), figures: vec![error_vs_horizon(&reports)?], ..Default::default() },
    ];
    let page = Page {
        title: format!("{} vs {}", a.model, b.model),
        summary: format!("Run B ({name_b}) against run A ({name_a})."),
        sections,
        version: env!("CARGO_PKG_VERSION"),
    };
    let (html, md) = render(&page)?;
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(crate::Location::file(out), e))?;
    write(out, &html, &md)
}
