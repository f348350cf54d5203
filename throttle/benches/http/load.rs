//! The load generator: `wrk` pinned to the client core, one hot client (a fixed
//! `x-client` header) or many (a Lua script rotating over pre-built requests).

use crate::Settings;
use crate::report::Case;
use crate::serve::Probe;
use crate::servers::{CLIENT_HEADER, Path, Server};
use std::path::PathBuf;
use std::process::Stdio;

/// Who sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Clients {
    /// One client sends everything.
    Hot,
    /// Each request comes from the next of `Settings::clients` clients, in turn.
    Many,
}

/// The hot client's `x-client` value.
const HOT_CLIENT: &str = "203.0.113.7";

/// One wrk measurement.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) requests_per_second: f64,
    /// The CPU time the server (and its redis-server) used per second of the
    /// measurement: near 1 when the server's core was its own and the bottleneck.
    pub(crate) server_cpu: f64,
    /// Other runnable threads on the machine just before the case (a 1 s average).
    pub(crate) others_before: f64,
    /// What looked wrong: errors, or statuses the path does not expect.
    pub(crate) anomalies: Vec<String>,
}

impl Sample {
    /// Adds what the probe request says about the server (a 200, and rate-limit headers
    /// exactly where the row says there are) and whether the server had its core.
    pub(crate) fn check_probe(&mut self, case: &Case, probe: &Probe) {
        if probe.status != 200 {
            self.anomalies.push(format!("the probe request got {}", probe.status));
        }
        if self.server_cpu < 0.8 {
            self.anomalies.push(format!(
                "the server used {:.0} % of its core: starved by other work, or not the bottleneck",
                100.0 * self.server_cpu
            ));
        }
        let expects_headers = !matches!(case.server, Server::Bare | Server::Attribute);
        if expects_headers == probe.ratelimit_headers.is_empty() {
            self.anomalies.push(format!("the probe's rate-limit headers are {:?}", probe.ratelimit_headers));
        }
    }
}

/// wrk's command line for each kind of client.
pub(crate) struct Load {
    many_script: PathBuf,
    settings: Settings,
}

impl Load {
    /// Writes the many-clients Lua script to the temp dir.
    pub(crate) fn new(settings: &Settings) -> Load {
        let many_script = std::env::temp_dir().join(format!("throttle-http-{}-clients.lua", std::process::id()));
        std::fs::write(&many_script, many_clients_script(settings.clients)).expect("the Lua script is written");
        Load { many_script, settings: settings.clone() }
    }

    /// The warm-up, which also spends the deny path's first request of every client:
    /// with many clients it is repeated, longer, until one run has reached them all
    /// (each wrk run starts the rotation over).
    pub(crate) fn warm_up(&self, case: &Case, port: u16) {
        let mut secs = self.settings.warmup_secs;
        loop {
            let requests = requests(&self.wrk(case.clients, port, secs));
            if case.clients == Clients::Hot || requests >= self.settings.clients as f64 || secs >= 64 {
                return;
            }
            secs *= 2;
        }
    }

    /// The measured run.
    pub(crate) fn measure(&self, case: &Case, port: u16) -> Sample {
        parse(&self.wrk(case.clients, port, self.settings.measure_secs), case)
    }

    fn wrk(&self, clients: Clients, port: u16, secs: u64) -> String {
        let mut command = self.settings.pinned(&self.settings.client_cpu);
        command.args(["wrk", "-t1"]);
        command.arg(format!("-c{}", self.settings.connections)).arg(format!("-d{secs}s"));
        match clients {
            Clients::Hot => command.arg("-H").arg(format!("{CLIENT_HEADER}: {HOT_CLIENT}")),
            Clients::Many => command.arg("-s").arg(&self.many_script),
        };
        let child = command.arg(format!("http://127.0.0.1:{port}/")).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = child.spawn().expect("wrk runs");
        self.settings.raise(child.id());
        let output = child.wait_with_output().expect("wrk runs");
        assert!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.many_script);
    }
}

/// Pre-formats one request per client (`10.a.b.c`), so each request costs wrk one
/// table lookup.
fn many_clients_script(clients: usize) -> String {
    format!(
        r#"local requests = {{}}
local count = {clients}
local next = 0
init = function(args)
  for i = 0, count - 1 do
    local client = string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
    requests[i + 1] = wrk.format(nil, nil, {{ ["{CLIENT_HEADER}"] = client }})
  end
end
request = function()
  next = next % count + 1
  return requests[next]
end
"#
    )
}

/// Requests per second and the anomalies from wrk's summary.
fn parse(output: &str, case: &Case) -> Sample {
    let number_after = |prefix: &str| -> Option<f64> {
        output.lines().find_map(|line| line.trim().strip_prefix(prefix)).and_then(|rest| rest.trim().parse().ok())
    };
    let requests_per_second =
        number_after("Requests/sec:").unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{output}"));
    let requests = requests(output);
    let rejected = number_after("Non-2xx or 3xx responses:").unwrap_or(0.0);
    let mut anomalies = Vec::new();
    if let Some(errors) = output.lines().find(|line| line.trim().starts_with("Socket errors:")) {
        anomalies.push(errors.trim().to_string());
    }
    match (case.server.limits(), case.path) {
        (false, _) | (true, Path::Allow) if rejected > 0.0 => {
            anomalies.push(format!("{rejected} of {requests} requests were not 2xx"));
        }
        // A few admitted requests are fine (a client the warm-up did not reach).
        (true, Path::Deny) if rejected < requests * 0.99 => {
            anomalies.push(format!("only {rejected} of {requests} requests were rejected"));
        }
        _ => {}
    }
    Sample { requests_per_second, server_cpu: 0.0, others_before: 0.0, anomalies }
}

/// The number of requests in wrk's summary (`123456 requests in 4.00s, ...`).
fn requests(output: &str) -> f64 {
    let line = output.lines().find(|line| line.contains(" requests in "));
    line.and_then(|line| line.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0.0)
}
