//! The metering chart: for each insurer of a month, its insured persons and
//! the answers served, as grouped bars in an SVG (plotters). The largest
//! insurers by insured persons are shown when there are many.

use ledger::domain::ServiceMonth;
use plotters::prelude::*;

use super::MeterRow;

/// Insurers drawn at most.
pub const MAX_BARS: usize = 30;

/// The chart of `rows` as SVG text.
pub fn svg(month: ServiceMonth, rows: &[MeterRow]) -> Result<String, String> {
    let mut rows: Vec<&MeterRow> = rows.iter().collect();
    rows.sort_by(|a, b| b.insured.cmp(&a.insured).then(a.insurer.cmp(&b.insurer)));
    rows.truncate(MAX_BARS);
    let n = rows.len().max(1);
    let top = rows
        .iter()
        .map(|r| r.insured.max(r.answers))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = String::new();
    {
        let width = (160 + 48 * n as u32).max(480);
        let root = SVGBackend::with_string(&mut out, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title =
            format!("qledger metering {month}: insured persons and answers served per insurer");
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..(top as f64 * 1.4))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("insurer number")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("count")
            .draw()
            .map_err(|e| e.to_string())?;
        // Each insurer's number, upright above its bars.
        let pad = top as f64 * 0.03;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                Text::new(
                    r.insurer.to_string(),
                    (i as f64 + 0.35, r.insured.max(r.answers) as f64 + pad),
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate270),
                )
            }))
            .map_err(|e| e.to_string())?;
        let insured = rows.iter().enumerate().map(|(i, r)| {
            Rectangle::new(
                [(i as f64 + 0.1, 0.0), (i as f64 + 0.5, r.insured as f64)],
                BLUE.mix(0.7).filled(),
            )
        });
        chart
            .draw_series(insured)
            .map_err(|e| e.to_string())?
            .label("insured persons")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.mix(0.7).filled()));
        let answers = rows.iter().enumerate().map(|(i, r)| {
            Rectangle::new(
                [(i as f64 + 0.5, 0.0), (i as f64 + 0.9, r.answers as f64)],
                RED.mix(0.7).filled(),
            )
        });
        chart
            .draw_series(answers)
            .map_err(|e| e.to_string())?
            .label("answers served")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.mix(0.7).filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_names_each_insurer_and_draws_both_series() {
        let rows = vec![
            MeterRow {
                insurer: "01130012".parse().unwrap(),
                answers: 40,
                insured: 120,
            },
            MeterRow {
                insurer: "138057".parse().unwrap(),
                answers: 7,
                insured: 30,
            },
        ];
        let svg = svg("2024-04".parse().unwrap(), &rows).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("01130012") && svg.contains("138057"));
        assert!(svg.contains("insured persons") && svg.contains("answers served"));
        assert!(svg.matches("<rect").count() >= 4);
    }
}
