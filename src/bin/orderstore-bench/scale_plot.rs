//! `scale`'s chart: one SVG of small panels, each measure against the store's size, drawn
//! here as plain SVG (a few lines and circles need no plotting library).

use std::fmt::Write;

/// One line of a panel: its name and its points (size in orders, value).
pub struct Series {
    /// The legend's words.
    pub name: String,
    /// (orders stored, value); a missing value leaves a gap.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A panel: a title, the unit of its values, and its lines.
pub struct Panel {
    /// The title.
    pub title: String,
    /// What the values are in.
    pub unit: String,
    /// Its lines.
    pub series: Vec<Series>,
}

const PANEL_WIDTH: f64 = 460.0;
const PANEL_HEIGHT: f64 = 300.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 90.0;
const COLUMNS: usize = 2;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f",
];

/// The chart of `panels`, two to a row.
pub fn svg(title: &str, panels: &[Panel]) -> String {
    let rows = panels.len().div_ceil(COLUMNS);
    let width = PANEL_WIDTH * COLUMNS as f64;
    let height = PANEL_HEIGHT * rows as f64 + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (index, panel) in panels.iter().enumerate() {
        let x = PANEL_WIDTH * (index % COLUMNS) as f64;
        let y = 40.0 + PANEL_HEIGHT * (index / COLUMNS) as f64;
        draw_panel(&mut svg, panel, x, y);
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, panel: &Panel, left: f64, top: f64) {
    let values = panel
        .series
        .iter()
        .flat_map(|series| series.points.iter().filter_map(|(_, value)| *value));
    let y_max = nice_ceiling(values.fold(0.0, f64::max));
    let x_max = panel
        .series
        .iter()
        .flat_map(|series| series.points.iter().map(|(size, _)| *size))
        .fold(0.0, f64::max)
        .max(1.0);
    let plot_left = left + MARGIN_LEFT;
    let plot_top = top + MARGIN_TOP;
    let plot_width = PANEL_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let at = |size: f64, value: f64| {
        (
            plot_left + size / x_max * plot_width,
            plot_top + plot_height - value / y_max * plot_height,
        )
    };
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{} ({})</text>"#,
        left + PANEL_WIDTH / 2.0,
        top + 22.0,
        escape(&panel.title),
        escape(&panel.unit)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{plot_left}" y="{plot_top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#999"/>"##
    );
    for step in 0..=4 {
        let value = y_max * step as f64 / 4.0;
        let (_, y) = at(0.0, value);
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            plot_left + plot_width,
            plot_left - 6.0,
            y + 4.0,
            short_number(value)
        );
    }
    let sizes: Vec<f64> = panel
        .series
        .first()
        .map(|series| series.points.iter().map(|(size, _)| *size).collect())
        .unwrap_or_default();
    for size in sizes {
        let (x, y) = at(size, 0.0);
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{}" text-anchor="middle">{}M</text>"#,
            y + 16.0,
            short_number(size / 1e6)
        );
    }
    for (index, series) in panel.series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter_map(|(size, value)| value.map(|value| at(*size, value)))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in &points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
        let legend_y = plot_top + plot_height + 32.0 + 14.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{plot_left}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{legend_y}">{}</text>"#,
            legend_y - 9.0,
            plot_left + 16.0,
            escape(&series.name)
        );
    }
}

/// The next round value at or above `value`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * power)
        .find(|ceiling| *ceiling >= value)
        .unwrap_or(10.0 * power)
}

fn short_number(value: f64) -> String {
    if value >= 1e6 {
        format!("{}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{}k", value / 1e3)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_and_a_point_per_value_and_a_gap_for_none() {
        let chart = svg(
            "t",
            &[Panel {
                title: "ingest".into(),
                unit: "orders/s".into(),
                series: vec![Series {
                    name: "orderstore <x>".into(),
                    points: vec![(1e6, Some(40_000.0)), (3e6, None), (1e7, Some(30_000.0))],
                }],
            }],
        );
        assert_eq!(chart.matches("<circle").count(), 2);
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert!(chart.contains("orderstore &lt;x&gt;"));
        assert!(chart.contains(">10M<"));
        assert_eq!(nice_ceiling(43_000.0), 50_000.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
    }
}
