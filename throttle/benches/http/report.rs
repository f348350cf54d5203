//! Cases, their samples, and the markdown table of medians.

use crate::Settings;
use crate::load::{Clients, Sample};
use crate::servers::{Path, Server};
use std::collections::HashMap;
use std::fmt::Write;
use std::process::Command;

/// Where the limiter keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    Memory,
    Redis,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "Redis",
        }
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Case {
    pub(crate) server: Server,
    pub(crate) path: Path,
    pub(crate) clients: Clients,
    pub(crate) backend: Backend,
}

impl Case {
    pub(crate) fn describe(&self) -> String {
        let clients = match self.clients {
            Clients::Hot => "1 client",
            Clients::Many => "many clients",
        };
        let path = if self.server.limits() { self.path.name() } else { "-" };
        format!("{} / {} / {path} / {clients}", self.server.name(), self.backend.name())
    }
}

/// The rows of the table and the chart: each server once per backend it runs on.
pub(crate) fn rows(results: &Results) -> Vec<(Server, Backend)> {
    let mut rows: Vec<(Server, Backend)> = Server::ALL.into_iter().map(|s| (s, Backend::Memory)).collect();
    rows.extend(Server::ALL.into_iter().filter(|s| s.is_throttle()).map(|s| (s, Backend::Redis)));
    rows.retain(|&(server, backend)| results.samples.keys().any(|c| c.server == server && c.backend == backend));
    rows
}

#[derive(Debug, Default)]
pub(crate) struct Results {
    samples: HashMap<Case, Vec<Sample>>,
    rounds: usize,
}

impl Results {
    pub(crate) fn record(&mut self, case: Case, sample: Sample) {
        let samples = self.samples.entry(case).or_default();
        samples.push(sample);
        self.rounds = self.rounds.max(samples.len());
    }

    /// The median req/s of a case. Bare axum has one measurement per kind of client,
    /// shown for both paths.
    pub(crate) fn median(&self, server: Server, backend: Backend, path: Path, clients: Clients) -> Option<f64> {
        let path = if server.limits() { path } else { Path::Allow };
        let samples = self.samples.get(&Case { server, path, clients, backend })?;
        let mut values: Vec<f64> = samples.iter().map(|s| s.requests_per_second).collect();
        values.sort_by(f64::total_cmp);
        Some(values[values.len() / 2])
    }

    pub(crate) fn rounds(&self) -> usize {
        self.rounds
    }

    fn bare(&self, clients: Clients) -> Option<f64> {
        self.median(Server::Bare, Backend::Memory, Path::Allow, clients)
    }

    /// The table, the goals of issue 12 and whatever looked wrong, in markdown.
    pub(crate) fn markdown(&self, settings: &Settings, machine: &Machine) -> String {
        let mut out = String::new();
        if settings.quick {
            let _ = writeln!(out, "**Quick mode (`THROTTLE_HTTP_QUICK`): a smoke test, not figures to publish.**");
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "HTTP `GET /`, req/s: median of {} interleaved rounds of {} s (after {} s of warm-up), \
             `wrk -t1 -c{}` on CPU {}, each server in its own process on CPU {} (with redis-server \
             for the Redis rows). Many clients: {} distinct `x-client` values in turn.",
            self.rounds,
            settings.measure_secs,
            settings.warmup_secs,
            settings.connections,
            settings.client_cpu,
            settings.server_cpu,
            settings.clients,
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", machine.describe());
        let _ = writeln!(out);
        let many = format!("{} clients", thousands(settings.clients as f64));
        let _ = writeln!(
            out,
            "| server | backend | 1 client: allow | ÷ bare | 1 client: deny | ÷ bare | {many}: allow | ÷ bare \
             | {many}: deny | ÷ bare |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (server, backend) in rows(self) {
            let _ = write!(out, "| {} | {} |", server.label(), backend.name());
            for clients in [Clients::Hot, Clients::Many] {
                for path in [Path::Allow, Path::Deny] {
                    match (self.median(server, backend, path, clients), self.bare(clients)) {
                        (Some(rps), Some(bare)) => {
                            let _ = write!(out, " {} | {:.2} |", thousands(rps), rps / bare);
                        }
                        (Some(rps), None) => {
                            let _ = write!(out, " {} | – |", thousands(rps));
                        }
                        _ => out.push_str(" – | – |"),
                    }
                }
            }
            out.push('\n');
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Bare axum has no limiter: its one figure per kind of client is shown for both paths.");
        let _ = writeln!(out);
        self.goals(&mut out, &many);
        self.spread(&mut out);
        self.server_cpu(&mut out);
        self.anomalies(&mut out);
        out
    }

    /// Issue 12's targets for `#[throttle(headers = "always")]` in memory.
    fn goals(&self, out: &mut String, many: &str) {
        let _ = writeln!(out, "Issue 12's targets, `#[throttle(headers = \"always\")]` in memory:");
        let _ = writeln!(out);
        for (clients, name) in [(Clients::Hot, "1 client"), (Clients::Many, many)] {
            let ours = |path| self.median(Server::AttributeHeaders, Backend::Memory, path, clients);
            let peer = |path| self.median(Server::TowerGovernor, Backend::Memory, path, clients);
            let ratio =
                |a: Option<f64>, b: Option<f64>| a.zip(b).map_or("–".to_string(), |(a, b)| format!("{:.2}", a / b));
            let _ = writeln!(
                out,
                "- {name}: allow {}× bare axum (target ≥ 0.90), {}× tower_governor (target ≥ 1.15); \
                 deny {}× tower_governor (target ≥ 1.15)",
                ratio(ours(Path::Allow), self.bare(clients)),
                ratio(ours(Path::Allow), peer(Path::Allow)),
                ratio(ours(Path::Deny), peer(Path::Deny)),
            );
        }
        let _ = writeln!(out);
    }

    /// The widest spread between rounds, so a reader knows which differences are noise.
    fn spread(&self, out: &mut String) {
        if self.rounds < 2 {
            return;
        }
        let mut spreads: Vec<(f64, Case)> = self
            .samples
            .iter()
            .map(|(case, samples)| {
                let values = samples.iter().map(|s| s.requests_per_second);
                let (low, high) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
                ((high - low) / self.median(case.server, case.backend, case.path, case.clients).unwrap_or(1.0), *case)
            })
            .collect();
        spreads.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut all: Vec<f64> = spreads.iter().map(|s| s.0).collect();
        all.sort_by(f64::total_cmp);
        if let Some((widest, case)) = spreads.first() {
            let _ = writeln!(
                out,
                "Spread between rounds ((max − min) ÷ median): {:.0} % for the median case, {:.0} % at most \
                 ({}).",
                100.0 * all[all.len() / 2],
                100.0 * widest,
                case.describe()
            );
            let _ = writeln!(out);
        }
    }

    /// How much of its core each server got: near 100 % means the server was the
    /// bottleneck and had the core to itself.
    fn server_cpu(&self, out: &mut String) {
        let mut shares: Vec<(f64, Case)> =
            self.samples.iter().flat_map(|(case, samples)| samples.iter().map(|s| (s.server_cpu, *case))).collect();
        shares.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((lowest, case)) = shares.first() {
            let _ = writeln!(
                out,
                "CPU time of the server (with its redis-server on the Redis rows) per second of measurement: \
                 {:.0} % in the median run, {:.0} % at the lowest ({}).",
                100.0 * shares[shares.len() / 2].0,
                100.0 * lowest,
                case.describe()
            );
            let _ = writeln!(out);
        }
        let mut others: Vec<f64> = self.samples.values().flatten().map(|s| s.others_before).collect();
        others.sort_by(f64::total_cmp);
        if let (Some(median), Some(most)) = (others.get(others.len() / 2), others.last()) {
            let _ = writeln!(
                out,
                "Other work on the machine just before each case (runnable threads besides the bench, \
                 1 s average): {median:.1} in the median case, {most:.1} at most."
            );
            let _ = writeln!(out);
        }
    }

    fn anomalies(&self, out: &mut String) {
        let mut lines: Vec<String> = self
            .samples
            .iter()
            .flat_map(|(case, samples)| {
                samples.iter().flat_map(move |s| s.anomalies.iter().map(move |a| format!("{}: {a}", case.describe())))
            })
            .collect();
        lines.sort();
        lines.dedup();
        if lines.is_empty() {
            let _ = writeln!(
                out,
                "Checks passed: every allow-path response was 2xx, at least 99 % of deny-path responses \
                 were rejected, no socket errors, and rate-limit headers exactly on the rows that send them."
            );
        } else {
            let _ = writeln!(out, "**Anomalies** (the figures above may not measure what their row says):");
            for line in lines {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
}

/// `71900.3` → `71,900`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: String,
    pub(crate) kernel: String,
    pub(crate) wrk: String,
    pub(crate) redis: Option<String>,
    pub(crate) rustc: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

impl Machine {
    /// Everything but the load after the run.
    pub(crate) fn probe(redis: Option<String>) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu =
            cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
        let wrk = command(&["wrk", "-v"]);
        let wrk = wrk.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        Machine {
            cpu: cpu.unwrap_or("?").to_string(),
            cores: std::thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
            kernel: command(&["uname", "-r"]).trim().to_string(),
            wrk,
            redis,
            rustc: command(&["rustc", "-V"]).trim().to_string(),
            load_before: load_average(),
            load_after: String::new(),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.load_after = load_average();
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "Machine: {}, {} cores, Linux {}, {}, {}, {}; load average (1 min) {} before the run, {} after.",
            self.cpu,
            self.cores,
            self.kernel,
            self.rustc,
            self.wrk,
            self.redis.as_ref().map_or("no Redis".to_string(), |v| format!("redis-server {v}")),
            self.load_before,
            self.load_after
        )
    }
}

fn command(args: &[&str]) -> String {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(output) => format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        Err(_) => "?".to_string(),
    }
}

fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split_whitespace().next().unwrap_or("?").to_string()
}
