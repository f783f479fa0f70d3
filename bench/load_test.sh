#!/usr/bin/env bash
# Starts `digitnn serve` on a free loopback port, warms it up with 1,000 requests, then sends
# REQUESTS more from CLIENTS clients; prints throughput, latency and the server's memory (RSS)
# after the warm-up and at the end.
#
# usage: bench/load_test.sh MODEL [REQUESTS=10000] [CLIENTS=16]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=${1:?usage: bench/load_test.sh MODEL [REQUESTS] [CLIENTS]}
requests=${2:-10000}
clients=${3:-16}
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin digitnn --example load_test
out=$(mktemp)
"$here/target/release/digitnn" serve --model "$model" --addr 127.0.0.1:0 > "$out" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q http "$out" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$out")
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' /proc/$server/status; }
"$here/target/release/examples/load_test" "$url" 1000 "$clients" > /dev/null
echo "server RSS after warm-up: $(rss)"
"$here/target/release/examples/load_test" "$url" "$requests" "$clients"
echo "server RSS after the run: $(rss)"
