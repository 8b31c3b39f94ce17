//! Runs the simulated market of `docs/market.md` and prints its tables; with `--svg DIR` writes
//! the charts there. `cargo run -p cocoon-market --example market-sim -- --svg docs/market`.

use std::time::Instant;

use cocoon_market::Preference;
use cocoon_market::simulation::{self, SimReport, preference_name, reference_scenario, svg_chart};

const SEED: u64 = 14;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let svg_dir = args
        .iter()
        .position(|a| a == "--svg")
        .and_then(|i| args.get(i + 1));
    let mixed = simulation::run(&reference_scenario(SEED, None), Instant::now())?;
    println!("mixed clients (seed {SEED}): one third each by price, latency and mix:50\n");
    print_clients(&mixed);
    print_prices(&mixed);
    println!("\neach kind alone:\n");
    println!(
        "| clients | served | refused | mean ms | p95 ms | mean coefficient | nanoTON per request | cheap-floor workers' token share |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for p in [Preference::Price, Preference::Mix(50), Preference::Latency] {
        let r = simulation::run(&reference_scenario(SEED, Some(p)), Instant::now())?;
        let c = &r.clients[0];
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} % |",
            preference_name(p),
            c.served,
            c.refused,
            c.mean_latency_ms,
            c.p95_latency_ms,
            c.mean_coefficient,
            c.spend_nanoton as f64 / c.served.max(1) as f64,
            100.0 * cheap_share(&r),
        );
    }
    if let Some(dir) = svg_dir {
        std::fs::create_dir_all(dir)?;
        let xs: Vec<f64> = mixed.seconds.iter().map(|s| f64::from(s.t)).collect();
        let per_worker = |f: &dyn Fn(usize, &simulation::SecondSample) -> f64| {
            (0..mixed.tokens_served.len())
                .map(|w| {
                    let label = format!("worker {}", w + 1);
                    (label, mixed.seconds.iter().map(|s| f(w, s)).collect())
                })
                .collect::<Vec<_>>()
        };
        let mut prices = per_worker(&|w, s| f64::from(s.coefficients[w]));
        prices.push((
            "demand ×100".into(),
            mixed.seconds.iter().map(|s| s.demand * 100.0).collect(),
        ));
        std::fs::write(
            format!("{dir}/prices.svg"),
            svg_chart(
                "Coefficient of each worker as demand rises and falls",
                "coefficient (1000 = 1.0x)",
                &xs,
                &prices,
            ),
        )?;
        let mut load = per_worker(&|w, s| 100.0 * s.utilisation[w]);
        load.push((
            "demand (req/s ×5)".into(),
            mixed.seconds.iter().map(|s| s.demand * 5.0).collect(),
        ));
        std::fs::write(
            format!("{dir}/utilisation.svg"),
            svg_chart(
                "Busy share of each worker's slots",
                "utilisation %",
                &xs,
                &load,
            ),
        )?;
        println!("\ncharts written to {dir}/prices.svg and {dir}/utilisation.svg");
    }
    Ok(())
}

fn print_clients(r: &SimReport) {
    println!(
        "| clients | served | refused | mean ms | p95 ms | mean coefficient | nanoTON per request |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &r.clients {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            c.name,
            c.served,
            c.refused,
            c.mean_latency_ms,
            c.p95_latency_ms,
            c.mean_coefficient,
            c.spend_nanoton as f64 / c.served.max(1) as f64
        );
    }
}

fn print_prices(r: &SimReport) {
    let reversals = r.reversals();
    println!(
        "\n| worker | floor..ceiling | price at 300 s | at 450 s | at 1150 s | changes | reversals | tokens served |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let scenario = reference_scenario(SEED, None);
    for (w, spec) in scenario.workers.iter().enumerate() {
        let at = |t: usize| r.seconds.get(t).map_or(0, |s| s.coefficients[w]);
        println!(
            "| {} ({:.0} tok/s × {}) | {}..{} | {} | {} | {} | {} | {} | {} |",
            w + 1,
            spec.speed_tps,
            spec.capacity,
            spec.policy.floor,
            spec.policy.ceiling,
            at(300),
            at(450),
            at(1150),
            r.changes[w].len(),
            reversals[w],
            r.tokens_served[w]
        );
    }
}

/// Share of the tokens served by the workers whose floor is at most 700 (the cheap ones).
fn cheap_share(r: &SimReport) -> f64 {
    let scenario = reference_scenario(SEED, None);
    let total: u64 = r.tokens_served.iter().sum();
    let cheap: u64 = scenario
        .workers
        .iter()
        .zip(&r.tokens_served)
        .filter(|(w, _)| w.policy.floor <= 700)
        .map(|(_, t)| t)
        .sum();
    cheap as f64 / total.max(1) as f64
}
