#!/usr/bin/env bash
# What an idle connection costs `wsgate serve` over time, plain and over TLS (issue 13): the same
# binary serves N idle connections of `wsgate bench idle` (pings every 5 s, answered), once on
# ws:// (the connections park) and once on wss:// with a self-signed P-256 certificate (they keep
# their reader goroutine: docs/RUNTIME.md), and is read before dialling and 5, 30 and 90 s after:
# heap and stack in use after a GC (its /debug/pprof/heap?gc=1, then /metrics), the heap the
# runtime has given back to the system, goroutines, and VmRSS, each per connection. The server
# runs on CPU 0, the load generator on CPU 1, both on loopback; each run stops by itself after
# 95 s. Usage: bench/idle-serve.sh [N] (default 5000, at most 15000). Needs openssl, curl, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 100 || n > 15000)); then
	echo "usage: $0 [connections: 100 to 15000]" >&2
	exit 2
fi
mkdir -p bench/bin
go build -o bench/bin/wsgate ./cmd/wsgate
w=bench/bin/wsgate
dir=$(mktemp -d)
server=""
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 2>/dev/null

addr=127.0.0.1:18444 metrics=127.0.0.1:19444
# read prints heap+stack in use (after a GC), heap released, goroutines and VmRSS, in bytes.
read_server() {
	curl -sf "http://$metrics/debug/pprof/heap?gc=1" >/dev/null
	curl -sf "http://$metrics/metrics" | awk -v rss="$(awk '/^VmRSS/{print $2 * 1024}' "/proc/$server/status")" '
		/^go_memstats_heap_inuse_bytes /{h=$2} /^go_memstats_stack_inuse_bytes /{s=$2}
		/^go_memstats_heap_released_bytes /{r=$2} /^go_goroutines /{g=$2}
		END{printf "%.0f %.0f %.0f %.0f\n", h+s, r, g, rss}'
}

printf '| mode | after | heap + stack B/conn | RSS delta B/conn | heap released MB | goroutines/conn |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: |\n'
for mode in plain tls; do
	args=() scheme=ws
	if [ $mode = tls ]; then args=(-tls-cert "$dir/cert.pem" -tls-key "$dir/key.pem") scheme=wss; fi
	taskset -c 0 $w serve -addr $addr -metrics-listen $metrics -ping-interval 5s "${args[@]}" >"$dir/$mode.log" 2>&1 &
	server=$!
	for _ in $(seq 50); do curl -sf "http://$metrics/readyz" >/dev/null && break; sleep 0.1; done
	read -r m0 _ g0 rss0 < <(read_server)
	(sleep 95 | taskset -c 1 $w bench idle -url "$scheme://$addr/ws" -ca "$dir/cert.pem" -c "$n" \
		-duration 100s -hold-stdin -metrics-url off -quiet >"$dir/$mode.bench" 2>&1) &
	bench=$!
	start=$(date +%s)
	for at in 5 30 90; do
		sleep $((start + at - $(date +%s)))
		read -r m r g rss < <(read_server)
		awk -v mode=$mode -v at=$at -v n="$n" -v m="$m" -v m0="$m0" -v rss="$rss" -v rss0="$rss0" -v r="$r" -v g="$g" -v g0="$g0" \
			'BEGIN{printf "| %s | %d s | %.0f | %.0f | %.1f | %.2f |\n", mode, at, (m-m0)/n, (rss-rss0)/n, r/1e6, (g-g0)/n}'
	done
	wait $bench || { echo "bench idle failed:" >&2; cat "$dir/$mode.bench" >&2; exit 1; }
	kill $server
	wait $server 2>/dev/null || true
	server=""
done
