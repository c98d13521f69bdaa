//! Pictures of benchmark results, as SVG drawn with `plotters`: one run of `ferry bench`
//! (throughput per round, latency percentiles, chat deliveries over time; `--chart`), and a
//! side-by-side comparison of ferry with its peers and the machine's ceiling
//! (`ferry bench chart`, which the scripts in `bench/` call with their medians).

use std::path::Path;

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::chat::ChatReport;
use super::latency::LatencyReport;
use super::throughput::ThroughputReport;

/// Height of one panel of a run's chart.
const PANEL_HEIGHT: u32 = 340;
/// Width of every chart.
const WIDTH: u32 = 900;

const PUT: RGBColor = RGBColor(31, 119, 180);
const GET: RGBColor = RGBColor(214, 39, 40);
const SESSION: RGBColor = RGBColor(44, 160, 44);
const EXEC: RGBColor = RGBColor(148, 103, 189);
const CEILING: RGBColor = RGBColor(150, 150, 150);
const LIMIT: RGBColor = RGBColor(200, 200, 200);
const FERRY: RGBColor = RGBColor(31, 119, 180);
const PEER: RGBColor = RGBColor(255, 127, 14);

/// What one run measured; each present report is one panel.
#[derive(Default)]
pub struct RunFigures<'a> {
    pub throughput: Option<&'a ThroughputReport>,
    pub latency: Option<&'a LatencyReport>,
    pub chat: Option<&'a ChatReport>,
}

/// Draws a run into `path`, one panel per measurement that has a picture.
///
/// # Errors
/// Nothing to draw, or the file cannot be written.
pub fn draw_run(path: &Path, title: &str, run: &RunFigures<'_>) -> anyhow::Result<()> {
    let panels = usize::from(run.throughput.is_some())
        + usize::from(run.latency.is_some())
        + usize::from(run.chat.is_some());
    if panels == 0 {
        bail!("--chart draws throughput, latency and chat; none of them ran");
    }
    let height = PANEL_HEIGHT * panels as u32 + 40;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(drawing)?;
    let areas = root.split_evenly((panels, 1));
    let mut areas = areas.iter();
    // Each present report takes the next panel.
    if let Some(report) = run.throughput
        && let Some(area) = areas.next()
    {
        throughput_panel(area, report)?;
    }
    if let Some(report) = run.latency
        && let Some(area) = areas.next()
    {
        latency_panel(area, report)?;
    }
    if let Some(report) = run.chat
        && let Some(area) = areas.next()
    {
        chat_panel(area, report)?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn drawing<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {e}")
}

/// MB/s of every round, put and get, with their medians in the legend.
fn throughput_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &ThroughputReport,
) -> anyhow::Result<()> {
    let rounds = report
        .put_rounds_mb_s
        .len()
        .max(report.get_rounds_mb_s.len()) as u32;
    let top = report
        .put_rounds_mb_s
        .iter()
        .chain(&report.get_rounds_mb_s)
        .copied()
        .fold(1.0, f64::max)
        * 1.45; // room for the legend above the lines
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "throughput: {} per transfer, verified with {}",
                size_label(report.size_bytes),
                report.algorithm.name()
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5f64..f64::from(rounds) + 0.5, 0f64..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("MB/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(rounds as usize + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(drawing)?;
    for (name, color, rounds, median) in [
        ("put", PUT, &report.put_rounds_mb_s, report.put_mb_s),
        ("get", GET, &report.get_rounds_mb_s, report.get_mb_s),
    ] {
        let points: Vec<(f64, f64)> = rounds
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 1.0, *v))
            .collect();
        line_with_points(
            &mut chart,
            &points,
            color,
            format!("{name} (median {median:.0} MB/s)"),
        )?;
    }
    legend(&mut chart)
}

/// Each kind of round trip's percentiles, on a logarithmic scale of milliseconds.
fn latency_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &LatencyReport,
) -> anyhow::Result<()> {
    const POINTS: [&str; 5] = ["min", "p50", "p90", "p99", "max"];
    let series: Vec<(&str, RGBColor, [f64; 5])> = [
        Some(("ping", PUT, &report.ping)),
        Some(("session set-up", SESSION, &report.session)),
        report.exec.as_ref().map(|e| ("exec -- true", EXEC, e)),
    ]
    .into_iter()
    .flatten()
    .map(|(name, color, p)| {
        (
            name,
            color,
            [p.min_ms, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms],
        )
    })
    .collect();
    let all = series.iter().flat_map(|(_, _, v)| v.iter().copied());
    // From half a decade below the least figure, so a labelled power of ten shows; room above for the
    // legend.
    let low = 10f64.powf(
        all.clone()
            .fold(f64::INFINITY, f64::min)
            .max(0.001)
            .log10()
            .floor(),
    ) / 2.0;
    let high = 10f64.powf(all.fold(0.0, f64::max).max(low).log10().floor() + 2.0);
    let mut chart = ChartBuilder::on(area)
        .caption("latency percentiles", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.3f64..4.3f64, (low..high).log_scale())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .y_desc("ms (log scale)")
        .x_labels(5)
        .x_label_formatter(&|x| {
            POINTS
                .get(x.round().max(0.0) as usize)
                .filter(|_| (x - x.round()).abs() < 0.01)
                .map_or_else(String::new, |p| (*p).to_string())
        })
        .draw()
        .map_err(drawing)?;
    for (name, color, values) in series {
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, v.max(low)))
            .collect();
        line_with_points(
            &mut chart,
            &points,
            color,
            format!("{name} (p50 {:.3} ms)", values[1]),
        )?;
    }
    legend(&mut chart)
}

/// One series as a 2 px line through dots, with its legend entry.
fn line_with_points<'a, CT>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: String,
) -> anyhow::Result<()>
where
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))
        .map_err(drawing)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
        .map_err(drawing)?;
    Ok(())
}

/// Deliveries per second over the run, bin by bin.
fn chat_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &ChatReport,
) -> anyhow::Result<()> {
    let bin = report.bin_ms.max(1) as f64 / 1000.0;
    let points: Vec<(f64, f64)> = report
        .deliveries_per_bin
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 * bin, *n as f64 / bin))
        .collect();
    let right = (points.len() as f64 * bin).max(bin);
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.3;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "chat: {} members, {} lines; {} of {} deliveries, p50 {:.1} ms, p99 {:.1} ms",
                report.clients,
                report.messages,
                report.deliveries,
                report.expected_deliveries,
                report.latency.p50_ms,
                report.latency.p99_ms
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..right, 0f64..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first line")
        .y_desc("deliveries/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(drawing)?;
    chart
        .draw_series(LineSeries::new(points, PUT.stroke_width(2)))
        .map_err(drawing)?
        .label(format!(
            "deliveries/s (mean {:.0})",
            report.deliveries_per_second
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PUT.stroke_width(2)));
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("cannot draw the chart's legend: {e}"))
}

/// One bar of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub name: String,
    pub value: f64,
}

impl std::str::FromStr for Bar {
    type Err = String;

    /// `NAME=VALUE`; the name may hold `=` itself (the last one splits).
    fn from_str(text: &str) -> Result<Bar, String> {
        let (name, value) = text
            .rsplit_once('=')
            .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("'{value}' in '{text}' is not a number of at least 0"))?;
        if name.trim().is_empty() {
            return Err(format!("'{text}' has no name before '='"));
        }
        Ok(Bar {
            name: name.trim().to_string(),
            value,
        })
    }
}

/// Draws `bars` side by side, one row each: the `ceiling` bar (the machine's ceiling, or the
/// reference the others are measured against) grey, other `limits` light grey, bars whose name
/// starts with `ferry` blue, peers orange; each labelled with its value and, when a ceiling is
/// named, its ratio to it.
///
/// # Errors
/// No bars, a ceiling that is not among them, or the file cannot be written.
pub fn draw_comparison(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[Bar],
    ceiling: Option<&str>,
    limits: &[String],
) -> anyhow::Result<()> {
    if bars.is_empty() {
        bail!("a comparison needs at least one NAME=VALUE");
    }
    let ceiling_value = match ceiling {
        Some(name) => Some(
            bars.iter()
                .find(|b| b.name == name)
                .map(|b| b.value)
                .with_context(|| format!("--ceiling '{name}' is not one of the bars"))?,
        ),
        None => None,
    };
    let rows = bars.len();
    let height = 90 + 44 * rows as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let top = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(36)
        .build_cartesian_2d(0f64..top, 0f64..rows as f64)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(unit)
        .x_label_formatter(&|x| round_figure(*x))
        .draw()
        .map_err(drawing)?;
    for (i, bar) in bars.iter().enumerate() {
        // The first bar on top.
        let y = (rows - 1 - i) as f64;
        let color = if Some(bar.name.as_str()) == ceiling {
            CEILING
        } else if limits.contains(&bar.name) {
            LIMIT
        } else if bar.name.starts_with("ferry") {
            FERRY
        } else {
            PEER
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (bar.value, y + 0.85)],
                color.mix(0.85).filled(),
            )))
            .map_err(drawing)?;
        let ratio = match ceiling_value {
            Some(c) if c > 0.0 && Some(bar.name.as_str()) != ceiling => {
                format!(" ({:.2}x {})", bar.value / c, ceiling.unwrap_or_default())
            }
            _ => String::new(),
        };
        let label = format!("{}: {} {unit}{ratio}", bar.name, round_figure(bar.value));
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (top * 0.01, y + 0.5),
                ("sans-serif", 15).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                ),
            )))
            .map_err(drawing)?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A transfer's size in binary units, as the CLI takes them.
fn size_label(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= MIB => format!("{:.0} MiB", b as f64 / MIB as f64),
        b => format!("{b} bytes"),
    }
}

/// A figure with as many digits as a reader needs.
fn round_figure(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_name_equals_value() {
        assert_eq!(
            "ferry get (TLS)=909.5".parse::<Bar>().unwrap(),
            Bar {
                name: "ferry get (TLS)".into(),
                value: 909.5
            }
        );
        assert_eq!("a=b=2".parse::<Bar>().unwrap().name, "a=b");
        assert!("nothing".parse::<Bar>().is_err());
        assert!("x=-1".parse::<Bar>().is_err());
        assert!("=3".parse::<Bar>().is_err());
    }
}
