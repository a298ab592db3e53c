//! Load for benchmarks: clients sending one request back to back for a
//! while, and what they measured.

use std::time::{Duration, Instant};

/// Requests per second and latency percentiles of one run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// `clients` clients, each on its own connection, sending what `request`
/// builds back to back for `run`; every answer must be 200 and is read
/// whole.
pub async fn load<F>(clients: usize, run: Duration, request: F) -> Load
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Clone + Send + 'static,
{
    let client = crate::http();
    let deadline = Instant::now() + run;
    let workers = (0..clients).map(|_| {
        let (client, request) = (client.clone(), request.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let response = request(&client).send().await.expect("an answer");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("a whole body");
                latencies.push(started.elapsed());
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|worker| worker.expect("a load worker"))
        .collect();
    latencies.sort();
    let at = |q: f64| {
        let index = (latencies.len() as f64 * q) as usize;
        latencies[index.min(latencies.len() - 1)]
    };
    Load {
        per_second: latencies.len() as f64 / run.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}
