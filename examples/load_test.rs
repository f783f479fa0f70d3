//! Load test for `digitnn serve`, loopback only: N predict requests (a drawn digit as PNG) from C
//! concurrent clients; prints requests/s, latency percentiles and failures.
//!
//! usage: cargo run --release --example load_test -- URL [REQUESTS=10000] [CLIENTS=16]
//! (bench/load_test.sh starts a server, runs this, and reports the server's memory too.)

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args.get(1).expect("usage: load_test URL [REQUESTS] [CLIENTS]").trim_end_matches('/').to_string();
    let host_ok = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| base.starts_with(p));
    assert!(host_ok, "this load test only targets loopback addresses");
    let requests: usize = args.get(2).map_or(10_000, |v| v.parse().expect("REQUESTS is a number"));
    let clients: usize = args.get(3).map_or(16, |v| v.parse().expect("CLIENTS is a number"));
    let url = format!("{base}/api/predict");
    let page = image::GrayImage::from_fn(280, 280, |x, y| {
        let on = (60..220).contains(&x) && (50..70).contains(&y)
            || (x as i32 - 200 + (y as i32 - 60) / 2).abs() < 11 && y > 60;
        image::Luma([if on { 0 } else { 255 }])
    });
    let mut png = Vec::new();
    page.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (agent, url, png) = (agent.clone(), &url, &png);
                scope.spawn(move || {
                    let share = requests / clients + usize::from(c < requests % clients);
                    (0..share)
                        .map(|_| {
                            let t = Instant::now();
                            let ok = agent
                                .post(url)
                                .header("Content-Type", "image/png")
                                .send(&png[..])
                                .is_ok_and(|mut r| r.status() == 200 && r.body_mut().read_to_string().is_ok());
                            (t.elapsed(), ok)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    let mut latencies: Vec<f64> = results.iter().map(|(d, _)| d.as_secs_f64() * 1e3).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "{} requests, {clients} clients: {:.0} requests/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {failed} failed",
        results.len(),
        results.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
