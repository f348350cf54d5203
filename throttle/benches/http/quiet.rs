//! How busy the machine is: a gate that waits for other work to stop before a case,
//! and the CPU time a process got, to tell a starved server from a slow one.

use std::time::{Duration, Instant};

/// Waits until, on average over one second, fewer than half a core's worth of other
/// threads are runnable (this process's own reading thread aside), for at most
/// `max_wait`. Returns the last average, quiet or not.
pub(crate) fn wait_for_quiet(max_wait: Duration) -> f64 {
    let deadline = Instant::now() + max_wait;
    loop {
        let others = others_running();
        if others < 0.5 || Instant::now() >= deadline {
            return others;
        }
    }
}

/// Runnable threads other than the caller, averaged over 20 readings in one second
/// (`procs_running` in `/proc/stat`; 0 where there is none).
fn others_running() -> f64 {
    let mut total = 0.0;
    for _ in 0..20 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let running = stat.lines().find_map(|l| l.strip_prefix("procs_running ")).and_then(|n| n.trim().parse().ok());
        total += running.map_or(0.0, |n: f64| n - 1.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    total / 20.0
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let ticks = |field: usize| stat_field(pid, field).and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / clock_ticks_per_second()
}

/// The session a process belongs to.
pub(crate) fn session_of(pid: u32) -> Option<u32> {
    stat_field(pid, 6)?.parse().ok()
}

/// Field `field` (numbered from 1, as in proc(5)) of `/proc/<pid>/stat`.
fn stat_field(pid: u32, field: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: field 3 starts after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(field.checked_sub(3)?).map(str::to_string)
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = std::process::Command::new("getconf").arg("CLK_TCK").output();
        output.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
    })
}
