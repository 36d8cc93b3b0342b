//! `build-peers`: builds every peer the tests use (and fetches Kafka's broker jars) into the peer cache (see
//! `layotto_test_support::peers`), printing how long each took, so the test command builds them
//! one at a time, up front, and CI logs show the cost.

use std::time::Instant;

use layotto_test_support::peers;

fn main() {
    let mut failed = false;
    for peer in peers::ALL {
        let started = Instant::now();
        match peers::try_binary(peer) {
            Ok(bin) => println!(
                "peer {} {}: ready in {:.1} s ({})",
                peer.name,
                peer.version,
                started.elapsed().as_secs_f64(),
                bin.display()
            ),
            Err(e) => {
                eprintln!("peer {} {}: {e}", peer.name, peer.version);
                failed = true;
            }
        }
    }
    let started = Instant::now();
    match peers::try_kafka_jars() {
        Ok(dir) => println!(
            "kafka broker jars {}: ready in {:.1} s ({})",
            peers::KAFKA_VERSION,
            started.elapsed().as_secs_f64(),
            dir.display()
        ),
        Err(e) => {
            eprintln!("kafka broker jars {}: {e}", peers::KAFKA_VERSION);
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
