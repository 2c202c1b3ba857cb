#!/usr/bin/env bash
# The main job, end to end: start the daemon on a Unix socket under out/, wait until it is
# SERVING, send the sample photo and video through it, scrape its metrics once, and stop it
# with SIGTERM (it must exit 0). The daemon is stopped whatever fails; the message says what.
#
# Usage: scripts/demo.sh [SAMPLES_DIR] [OUT_DIR]   (run by `make demo` after the models and
# samples are fetched; OBSCURA, the obscura command, and PYTHON default to the venv's)
set -uo pipefail
cd "$(dirname "$0")/.."

SAMPLES=${1:-out/samples}
OUT=${2:-out/demo}
OBSCURA=${OBSCURA:-.venv/bin/obscura}
PYTHON=${PYTHON:-.venv/bin/python}
RUN=${DEMO_RUN:-$PWD/out/daemon}  # the socket and the daemon's log
SOCKET=unix://$RUN/obscura.sock
LOG=$RUN/serve.log
mkdir -p "$RUN" "$OUT"
if [ ${#RUN} -gt 90 ]; then  # a Unix socket path holds at most 107 bytes
    RUN=$(mktemp -d /tmp/obscura-demo.XXXXXX)
    SOCKET=unix://$RUN/obscura.sock
fi

step="finding a free port for the metrics endpoint"
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
METRICS=127.0.0.1:$PORT
pid=""

fail() {
    echo "demo: FAILED while $step" >&2
    if [ -s "$LOG" ]; then
        echo "demo: the daemon's last log lines ($LOG):" >&2
        tail -n 20 "$LOG" >&2
    fi
    exit 1
}

stop_daemon() {  # SIGTERM, then the exit status: the daemon drains and exits 0
    local status=0
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || status=$?
    fi
    pid=""
    return "$status"
}
trap 'stop_daemon >/dev/null 2>&1 || true' EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

step="starting the daemon"
echo "demo: obscura serve --listen $SOCKET --metrics-listen $METRICS (log: $LOG)"
"$OBSCURA" -v serve --listen "$SOCKET" --metrics-listen "$METRICS" >"$LOG" 2>&1 &
pid=$!

step="waiting for the daemon to report SERVING (models loading and warming up)"
for _ in $(seq 1 240); do
    kill -0 "$pid" 2>/dev/null || { pid=""; fail; }
    if "$OBSCURA" health --server "$SOCKET" --timeout 1 >/dev/null 2>&1; then
        break
    fi
    sleep 0.5
done
"$OBSCURA" health --server "$SOCKET" --timeout 1 >/dev/null 2>&1 || fail
echo "demo: the daemon is SERVING"

step="anonymizing the samples in $SAMPLES through the daemon"
"$OBSCURA" anonymize "$SAMPLES" -o "$OUT" --server "$SOCKET" || fail

step="scraping the metrics endpoint http://$METRICS/metrics"
"$PYTHON" - "$METRICS" <<'EOF' || fail
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10) as reply:
    text = reply.read().decode()
print(f"demo: metrics at http://{sys.argv[1]}/metrics ({len(text.splitlines())} lines), a few:")
stages: dict[str, dict[str, float]] = {}
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        if family.name in ("obscura_frames", "obscura_detections") and sample.value:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            print(f"  {sample.name}{{{labels}}} {sample.value:g}")
        elif family.name == "obscura_stage_duration_seconds":
            kind = sample.name.rpartition("_")[2]  # count, sum, bucket, created
            stages.setdefault(sample.labels["stage"], {})[kind] = sample.value
means = [f"{name} {1000 * s['sum'] / s['count']:.1f}" for name, s in stages.items() if s.get("count")]
print("  mean ms per frame by stage: " + ", ".join(means))
EOF

step="stopping the daemon with SIGTERM"
stop_daemon || { echo "demo: the daemon did not exit 0 after SIGTERM" >&2; fail; }
echo "demo: the daemon stopped cleanly (exit 0)"
echo "demo: outputs in $OUT/: anonymized media and *.json metadata" \
    "(add --save-mask all for *_bin_mask / *_ins_mask masks)"
