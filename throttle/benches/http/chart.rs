//! The results as an SVG bar chart, written by hand: one panel per kind of client, one
//! row per server and backend, an allow bar and a deny bar in each.

use crate::Settings;
use crate::load::Clients;
use crate::report::{Backend, Machine, Results, rows, thousands};
use crate::servers::{Path, Server};
use std::fmt::Write;

const LABEL_WIDTH: f64 = 250.0;
const PANEL_WIDTH: f64 = 380.0;
const PANEL_GAP: f64 = 30.0;
const BAR: f64 = 12.0;
const ROW: f64 = 2.0 * BAR + 10.0;
const TOP: f64 = 78.0;
const ALLOW_COLOUR: &str = "#3b76af";
const DENY_COLOUR: &str = "#e08a2c";
const BARE_COLOUR: &str = "#8c8c8c";

pub(crate) fn svg(results: &Results, settings: &Settings, machine: &Machine) -> String {
    let rows = rows(results);
    let many = format!("{} clients", thousands(settings.clients as f64));
    let panels = [(Clients::Hot, "1 hot client"), (Clients::Many, many.as_str())];
    let mut max: f64 = 1.0;
    for &(server, backend) in &rows {
        for (clients, _) in panels {
            for path in [Path::Allow, Path::Deny] {
                max = max.max(results.median(server, backend, path, clients).unwrap_or(0.0));
            }
        }
    }
    let scale = nice_ceiling(max);
    let width = LABEL_WIDTH + 2.0 * PANEL_WIDTH + PANEL_GAP + 70.0;
    let height = TOP + rows.len() as f64 * ROW + 60.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">HTTP GET / through each limiter: requests per second (median), higher is better</text>"#
    );
    let _ = writeln!(
        svg,
        r##"<rect x="10" y="34" width="12" height="12" fill="{ALLOW_COLOUR}"/><text x="27" y="44">allow (a quota that never runs out)</text><rect x="250" y="34" width="12" height="12" fill="{DENY_COLOUR}"/><text x="267" y="44">deny (1/hour, spent)</text><rect x="410" y="34" width="12" height="12" fill="{BARE_COLOUR}"/><text x="427" y="44">no limiter</text>"##
    );

    for (index, (clients, title)) in panels.into_iter().enumerate() {
        let x0 = LABEL_WIDTH + index as f64 * (PANEL_WIDTH + PANEL_GAP);
        let _ = writeln!(svg, r#"<text x="{x0}" y="{}" font-weight="bold">{title}</text>"#, TOP - 10.0);
        // Grid lines at quarters of the scale.
        for quarter in 0..=4 {
            let x = x0 + PANEL_WIDTH * quarter as f64 / 4.0;
            let value = scale * quarter as f64 / 4.0;
            let bottom = TOP + rows.len() as f64 * ROW;
            let _ = writeln!(
                svg,
                r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{bottom}" stroke="#dddddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#555555">{}</text>"##,
                bottom + 14.0,
                kilo(value)
            );
        }
        for (row, &(server, backend)) in rows.iter().enumerate() {
            let y = TOP + row as f64 * ROW + 4.0;
            let paths: &[Path] = if server.limits() { &[Path::Allow, Path::Deny] } else { &[Path::Allow] };
            for (slot, &path) in paths.iter().enumerate() {
                let Some(rps) = results.median(server, backend, path, clients) else { continue };
                let colour = match (server, path) {
                    (Server::Bare, _) => BARE_COLOUR,
                    (_, Path::Allow) => ALLOW_COLOUR,
                    (_, Path::Deny) => DENY_COLOUR,
                };
                let bar_y = y + slot as f64 * BAR;
                let bar_width = PANEL_WIDTH * rps / scale;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x0}" y="{bar_y}" width="{bar_width:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                    BAR - 1.0,
                    x0 + bar_width + 3.0,
                    bar_y + BAR - 2.5,
                    kilo(rps)
                );
            }
        }
    }
    for (row, &(server, backend)) in rows.iter().enumerate() {
        let y = TOP + row as f64 * ROW + 4.0 + BAR + 4.0;
        let label = match backend {
            Backend::Memory if server.is_throttle() => format!("{} (memory)", server.short()),
            Backend::Memory => server.short().to_string(),
            Backend::Redis => format!("{} (Redis)", server.short()),
        };
        let _ = writeln!(svg, r#"<text x="{}" y="{y}" text-anchor="end">{}</text>"#, LABEL_WIDTH - 8.0, escape(&label));
    }
    let footer = format!(
        "median of {} rounds of {} s; wrk -t1 -c{} on one core, each server (and redis-server) on the other; {}, {} cores, {}",
        results.rounds(),
        settings.measure_secs,
        settings.connections,
        machine.cpu,
        machine.cores,
        machine.wrk
    );
    let _ = writeln!(svg, r##"<text x="10" y="{}" fill="#555555">{}</text>"##, height - 12.0, escape(&footer));
    svg.push_str("</svg>\n");
    svg
}

/// The smallest 1, 2 or 5 × 10^n at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|&v| v >= value).unwrap_or(value)
}

fn kilo(value: f64) -> String {
    if value >= 1000.0 { format!("{:.1}k", value / 1000.0) } else { format!("{value:.0}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
