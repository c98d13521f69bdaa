//! `ferry ping`: round trips on one session, printed like ping(8), with a summary.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::ClientArgs;

#[derive(Debug, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Number of pings.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = super::at_least_one)]
    pub count: u64,
    /// Seconds between pings (0 for back to back).
    #[arg(short = 'i', long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
}

pub async fn run(args: PingArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=3600.0).contains(&args.interval) {
        anyhow::bail!("--interval must be between 0 and 3600 seconds");
    }
    let started = std::time::Instant::now();
    let mut client = args.client.connect().await?;
    let connected = started.elapsed();
    let info = client.info().clone();
    let transport = match &info.tls {
        Some((fp, _)) => format!("TLS {fp}"),
        None => "plaintext".to_string(),
    };
    let user = info.granted.user.as_deref().unwrap_or("anonymous");
    println!(
        "PING {} ({transport}, user {user}, may {}): connected in {}",
        ferry::safe_text::escape(&info.server),
        info.granted.permissions,
        millis(connected)
    );

    let interval = Duration::from_secs_f64(args.interval);
    let mut rtts = Vec::with_capacity(args.count.min(4096) as usize);
    // Ctrl-C ends the run at any point and still prints the summary, like ping(8).
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    for seq in 1..=args.count {
        if seq > 1 && !interval.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut interrupted => break,
            }
        }
        let rtt = tokio::select! {
            rtt = client.ping(seq) => rtt?,
            _ = &mut interrupted => break,
        };
        println!(
            "pong from {}: seq={seq} time={}",
            ferry::safe_text::escape(&info.server),
            millis(rtt)
        );
        rtts.push(rtt);
    }
    let _ = client.close().await;

    rtts.sort_unstable();
    println!(
        "--- {} ping statistics ---",
        ferry::safe_text::escape(&info.server)
    );
    if let (Some(min), Some(max)) = (rtts.first(), rtts.last()) {
        let median = rtts[rtts.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{}, rtt min/median/max = {:.3}/{:.3}/{:.3} ms",
            super::units::count(rtts.len() as u64, "pong", "pongs"),
            ms(*min),
            ms(median),
            ms(*max)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
