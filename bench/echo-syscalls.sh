#!/usr/bin/env bash
# The system calls an echo server makes per echoed message (issue 13's 100×64 KiB lead): one echo
# server of internal/cmd/echoserve (-impl IMPL) on CPU 0 under `strace -c -f`, and `wsgate bench
# echo` on CPU 1 with C connections of SIZE-byte messages for 5 s, on loopback. Prints, per
# message, the calls of read(2) and write(2), how many of them failed (EAGAIN, for a
# non-blocking socket) and how many succeeded, and futex(2) and epoll_pwait(2). strace slows the server several times:
# read the counts, not the rate. Usage: bench/echo-syscalls.sh IMPL [C [SIZE [CHECKOUT]]], IMPL
# one of gws, gorilla, wsgate, wsgate-goroutine; CHECKOUT another checkout of this module whose
# echoserve to run instead (an A/B against an older tree). Needs strace and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
impl=${1:?usage: $0 IMPL [C [SIZE [CHECKOUT]]]}
c=${2:-100} size=${3:-65536} src=${4:-.}
if ! [[ $c =~ ^[1-9][0-9]*$ && $size =~ ^[1-9][0-9]*$ ]] || ((c > 1000 || size > 1 << 20)); then
	echo "usage: $0 IMPL [C: 1 to 1000 [SIZE: 1 byte to 1 MiB [CHECKOUT]]]" >&2
	exit 2
fi
dir=$(mktemp -d)
server="" tracer=""
cleanup() {
	if [ -n "$tracer" ]; then kill "$tracer" 2>/dev/null || true; fi
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
(cd "$src" && go build -o "$dir/echoserve" ./internal/cmd/echoserve)
go build -o "$dir/wsgate" ./cmd/wsgate

taskset -c 0 "$dir/echoserve" -impl "$impl" -lifetime 60s >"$dir/addr" &
server=$!
for _ in $(seq 50); do
	[ -s "$dir/addr" ] && break
	sleep 0.1
done
addr=$(awk '{print $NF; exit}' "$dir/addr")
strace -qq -c -f -p "$server" -o "$dir/strace" &
tracer=$!
sleep 0.5
if ! kill -0 "$tracer" 2>/dev/null; then
	tracer=""
	echo "$0: strace could not attach to the server (PID $server): is strace installed, and ptrace allowed?" >&2
	exit 1
fi
taskset -c 1 "$dir/wsgate" bench echo -url "ws://$addr/ws" -c "$c" -size "$size" -duration 5s -json -quiet >"$dir/run.json"
kill -INT "$tracer"
wait "$tracer" || true
tracer=""
python3 - "$dir/run.json" "$dir/strace" "$impl" <<'EOF'
import json, sys
run, trace, impl = sys.argv[1:]
msgs = json.load(open(run))["messages"]
print(f"{impl}: {msgs} messages echoed under strace; per message:")
for line in open(trace):
    f = line.split()
    if len(f) >= 5 and f[-1] in ("read", "write", "futex", "epoll_pwait"):
        calls, errors = int(f[3]), int(f[4]) if len(f) == 6 else 0
        print(f"  {f[-1]:12} {calls / msgs:6.2f} calls, {(calls - errors) / msgs:6.2f} succeeded, {errors / msgs:5.2f} failed")
EOF
