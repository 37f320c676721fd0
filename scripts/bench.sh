#!/usr/bin/env bash
# bench.sh - rbd-cg against stock Ceph on one throwaway cluster, in one run.
#
# Builds the class and the CLI in release mode, starts a throwaway cluster whose OSD loads
# the release class, and runs:
#  - the harness in client/benches/compare.rs: identical groups for both tools (separate
#    images), the two alternated run by run, medians and ratios (ours / stock); the raw class
#    round trip (10,000 interleaved calls of rbd_cg.get_version and hello.say_hello);
#  - with --datapath, the data path (issue #12): fio's rbd engine on a plain image (A0) and on
#    an image with librbd's journaling (A1), fio's nbd engine against `rbd-cg nbd serve` of a
#    group without (N0) and with (N1) the group journal (N1p: two journal appends in flight,
#    --appends-in-flight 2, instead of one), and against an in-memory NBD server
#    (M, the transport's floor): 4 KiB random writes at QD1 and QD16, 1 MiB sequential
#    writes at QD4. Fresh images per case and repetition, cases rotated run by run, medians
#    of the repetitions, ratios taken within each repetition (then their median), the load
#    average beside every figure, and the journal writer's phase times (RUST_LOG=debug
#    statistics of `rbd-cg nbd serve`).
# The report (markdown) goes to stdout and target/bench-report.md; docs/BENCHMARKS.md holds a
# recorded one. Destroys its cluster at the end.
#
# Usage: scripts/bench.sh [--reps N] [--scale] [--no-compare] [--no-round-trip]
#                         [--datapath | --datapath-only] [--runtime SECONDS]
#   --reps N        repetitions (compare: default 7; data path: default 3)
#   --datapath      add the data-path benchmark; --datapath-only runs only that
#   --runtime S     seconds per fio workload (default 20, after a 3 s ramp)
# Environment: RBD_CG_BENCH_DIR (cluster directory, default target/bench-cluster).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=${RBD_CG_BENCH_DIR:-$repo/target/bench-cluster}

compare=1 datapath=0 reps='' runtime=20
args=("$@")
for ((i = 0; i < $#; i++)); do
    case ${args[i]} in
        --datapath) datapath=1 ;;
        --datapath-only) datapath=1 compare=0 ;;
        --reps) reps=${args[i + 1]:-} ;;
        --runtime) runtime=${args[i + 1]:-} ;;
    esac
done
[[ -z $reps || $reps =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --reps wants a positive number" >&2; exit 2; }
[[ $runtime =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --runtime wants a positive number of seconds" >&2; exit 2; }

scripts/deps.sh
echo "== building (release)" >&2
cargo build --release --locked -p cls_rbd_cg -p rbd_cg_cli
((compare)) && cargo bench --locked -p rbd_cg_client --bench compare --no-run
((datapath)) && cargo build --release --locked -p rbd_cg_datapath --example nbd_mem_server
scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
trap 'scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true' EXIT
scripts/cluster.sh start "$dir" --class "$repo/target/release/libcls_rbd_cg.so"
eval "$(scripts/cluster.sh env "$dir")"

# ---- the data path -----------------------------------------------------------------------

ours=$repo/target/release/rbd-cg
out=$repo/target/bench-datapath
size_mib=256
ramp=3
server_pid=''

stop_server() {
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=''
}

# start_server CASE IMAGE LOG: serves the case's group (or the in-memory backend) on
# $out/nbd.sock and sets $server_pid once the socket is there.
start_server() {
    local case=$1 image=$2 log=$3 sock=$out/nbd.sock
    rm -f "$sock"
    if [[ $case == M ]]; then
        RUST_LOG=warn "$repo/target/release/examples/nbd_mem_server" --unix "$sock" \
            --export "$image=$size_mib" >"$log" 2>&1 &
    else
        local pipeline=()
        [[ $case == N1p ]] && pipeline=(--appends-in-flight 2)
        RUST_LOG=info,rbd_cg_journal::stats=debug "$ours" nbd serve "rbd/g-$image" --socket "$sock" "${pipeline[@]}" \
            >"$log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 100); do
        [[ -S $sock ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench.sh: the $case server did not start:" >&2
    cat "$log" >&2
    exit 1
}

# Waits until the group journal has applied everything it holds (so that each workload
# starts from the same state; the applier's work during a workload is part of it).
wait_applied() {
    local group=$1 status
    for _ in $(seq 600); do
        status=$("$ours" journal status "rbd/$group" --format json)
        python3 -c 'import json, sys; s = json.load(sys.stdin); sys.exit(s["head"] != s["applied"])' <<<"$status" &&
            return 0
        sleep 0.5
    done
    echo "bench.sh: journal of $group not applied after 5 minutes" >&2
    exit 1
}

# fio_run CASE IMAGE OUTPUT.json FIO-ARGS...
fio_run() {
    local case=$1 image=$2 json=$3
    shift 3
    local target=()
    case $case in
        A*) target=(--ioengine=rbd --clientname=admin --pool=rbd "--rbdname=$image") ;;
        *) target=(--ioengine=nbd "--uri=nbd+unix:///$([[ $case == M ]] && echo "$image" || echo "rbd/$image")?socket=$out/nbd.sock") ;;
    esac
    fio --name="$case" "${target[@]}" --direct=1 --lat_percentiles=1 --output-format=json --output="$json" "$@" \
        >/dev/null
}

# One case, one repetition: fresh image (and group), fill it, then the three workloads.
run_case() {
    local rep=$1 case=$2 image group features
    image=$(tr 'A-Z' 'a-z' <<<"dp-$rep-$case")
    group=g-$image
    features=layering,exclusive-lock,object-map,fast-diff,deep-flatten
    [[ $case == A1 ]] && features+=,journaling
    echo "== data path: repetition $rep, $case" >&2
    if [[ $case != M ]]; then
        rbd create --size "${size_mib}M" --image-feature "$features" "rbd/$image"
    fi
    if [[ $case == N* ]]; then
        "$ours" create "rbd/$group"
        "$ours" image add "rbd/$group" "rbd/$image" >/dev/null
        [[ $case == N1* ]] && "$ours" journal enable "rbd/$group" >/dev/null
    fi
    # Fill the image once (every object exists, as in a used volume): not measured.
    [[ $case == A* ]] || start_server "$case" "$image" "$out/$rep-$case-fill.log"
    fio_run "$case" "$image" "$out/$rep-$case-fill.json" --rw=write --bs=1M --iodepth=4 --size="${size_mib}M"
    stop_server
    local wl
    for wl in qd1 qd16 seq; do
        [[ $case == N1* ]] && wait_applied "$group"
        [[ $case == A* ]] || start_server "$case" "$image" "$out/$rep-$case-$wl.log"
        local load_before
        load_before=$(cut -d' ' -f1 /proc/loadavg)
        local spec=()
        case $wl in
            qd1) spec=(--rw=randwrite --bs=4k --iodepth=1) ;;
            qd16) spec=(--rw=randwrite --bs=4k --iodepth=16) ;;
            seq) spec=(--rw=write --bs=1M --iodepth=4) ;;
        esac
        fio_run "$case" "$image" "$out/$rep-$case-$wl.json" "${spec[@]}" --time_based --runtime="$runtime" \
            --ramp_time="$ramp"
        echo "$load_before $(cut -d' ' -f1 /proc/loadavg)" >"$out/$rep-$case-$wl.load"
        if [[ $case == N1* ]]; then
            "$ours" journal status "rbd/$group" --format json >"$out/$rep-$case-$wl.status"
        fi
        stop_server
    done
    if [[ $case == N* ]]; then
        [[ $case == N1* ]] && "$ours" journal disable "rbd/$group" >/dev/null
        "$ours" rm --force "rbd/$group" >/dev/null
    fi
    [[ $case == M ]] || rbd rm --no-progress "rbd/$image"
}

datapath_bench() {
    local reps=$1 cases=(A0 A1 N0 N1 N1p M) rep k
    rm -rf "$out"
    mkdir -p "$out"
    trap 'stop_server; scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true' EXIT
    for ((rep = 1; rep <= reps; rep++)); do
        # Rotate the order run by run, so that drift in the machine hits every case alike.
        for ((k = 0; k < ${#cases[@]}; k++)); do
            run_case "$rep" "${cases[(k + rep - 1) % ${#cases[@]}]}"
        done
    done
    python3 - "$out" "$reps" "$runtime" <<'EOF'
import json, re, statistics, sys
out, reps, runtime = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cases = ["A0", "A1", "N0", "N1", "N1p", "M"]
names = {
    "A0": "A0 fio rbd, plain image",
    "A1": "A1 fio rbd, librbd journaling",
    "N0": "N0 fio nbd, rbd-cg nbd serve, no journal",
    "N1": "N1 fio nbd, rbd-cg nbd serve, group journal",
    "N1p": "N1p the same, two appends in flight (--appends-in-flight 2)",
    "M": "M fio nbd, in-memory NBD server (transport floor)",
}

def job(rep, case, wl):
    with open(f"{out}/{rep}-{case}-{wl}.json") as f:
        text = f.read()
    return json.loads(text[text.index("{"):])["jobs"][0]["write"]

def load(rep, case, wl):
    with open(f"{out}/{rep}-{case}-{wl}.load") as f:
        return max(float(x) for x in f.read().split())

# Per repetition: QD1 mean and p99 latency (ms), QD16 IOPS, sequential MB/s, load.
m = {}
for rep in range(1, reps + 1):
    for case in cases:
        qd1, qd16, seq = job(rep, case, "qd1"), job(rep, case, "qd16"), job(rep, case, "seq")
        m[rep, case] = {
            "lat": qd1["lat_ns"]["mean"] / 1e6,
            "p99": qd1["lat_ns"]["percentile"]["99.000000"] / 1e6,
            "iops1": qd1["iops"],
            "iops16": qd16["iops"],
            "mbs": seq["bw_bytes"] / 1e6,
            "load": max(load(rep, case, wl) for wl in ("qd1", "qd16", "seq")),
        }
med = lambda xs: statistics.median(xs)
def col(case, key):
    return med([m[rep, case][key] for rep in range(1, reps + 1)])
def ratio(a, b, key):
    return med([m[rep, a][key] / m[rep, b][key] for rep in range(1, reps + 1)])
def spread(case, key):
    xs = [m[rep, case][key] for rep in range(1, reps + 1)]
    return f"{min(xs):.2f}–{max(xs):.2f}"

print(f"### Data path ({reps} repetitions, {runtime} s per workload after a 3 s ramp, medians)\n")
print("| case | QD1 4K randwrite mean | QD1 p99 | QD1 IOPS | QD16 4K randwrite IOPS | 1 MiB seq write QD4 | load avg (max during case) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for case in cases:
    print(f"| {names[case]} | {col(case, 'lat'):.2f} ms | {col(case, 'p99'):.2f} ms | {col(case, 'iops1'):.0f} | "
          f"{col(case, 'iops16'):.0f} | {col(case, 'mbs'):.1f} MB/s | {col(case, 'load'):.1f} |")
print()
print("Ratios, each taken within one repetition (median; range over repetitions):\n")
print("| ratio | target | median | range | met |")
print("|---|---|---:|---:|---|")
def row(label, target, a, b, key, ok):
    xs = [m[rep, a][key] / m[rep, b][key] for rep in range(1, reps + 1)]
    r = med(xs)
    met = "–" if ok is None else "yes" if ok(r) else "**no**"
    print(f"| {label} | {target} | {r:.2f} | {min(xs):.2f}–{max(xs):.2f} | {met} |")
row("N1 / A0 QD1 mean latency", "≤ 1.3", "N1", "A0", "lat", lambda r: r <= 1.3)
row("N1 / A0 QD1 p99 latency", "–", "N1", "A0", "p99", None)
row("N1 / A0 QD16 IOPS", "≥ 0.75", "N1", "A0", "iops16", lambda r: r >= 0.75)
row("N1 / A1 QD16 IOPS", "≥ 1.2", "N1", "A1", "iops16", lambda r: r >= 1.2)
row("N1 / A0 1 MiB seq MB/s", "≥ 0.5", "N1", "A0", "mbs", lambda r: r >= 0.5)
row("A1 / A0 QD1 mean latency (stock journaling)", "–", "A1", "A0", "lat", None)
row("A1 / A0 QD16 IOPS", "–", "A1", "A0", "iops16", None)
row("A1 / A0 1 MiB seq MB/s", "–", "A1", "A0", "mbs", None)
row("N0 / A0 QD1 mean latency (NBD + server, no journal)", "–", "N0", "A0", "lat", None)
row("N0 / A0 QD16 IOPS", "–", "N0", "A0", "iops16", None)
row("N1 / N0 QD1 mean latency (the journal's own cost)", "–", "N1", "N0", "lat", None)
row("N1 / N0 QD16 IOPS", "–", "N1", "N0", "iops16", None)
row("N1p / N1 QD1 mean latency (same code path at QD1: the noise)", "–", "N1p", "N1", "lat", None)
row("N1p / N1 QD16 IOPS (two appends in flight against one)", "–", "N1p", "N1", "iops16", None)
row("N1p / N1 1 MiB seq MB/s", "–", "N1p", "N1", "mbs", None)
print()

# Where the journaled cases' time goes: the writer's statistics (µs), per workload, medians
# over repetitions.
pat = re.compile(r"^rbd-cg: (\S.*?)\s+n=(\d+) mean=(\d+)\S* p50=(\d+)\S* p99=(\d+)\S* max=(\d+)")
def stats(rep, case, wl):
    found = {}
    try:
        with open(f"{out}/{rep}-{case}-{wl}.log") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        line = line if line.startswith("rbd-cg: ") else "rbd-cg: " + line
        hit = pat.match(line.split(" | ")[0])
        if hit:
            found[hit.group(1).strip()] = [int(hit.group(i)) for i in range(2, 7)]
    return found
phases = [("queued", "submit → its append sent (batching, appends ahead of it)"),
          ("append op", "segment_append RADOS op, per append"),
          ("durable", "submit → durable = acknowledged (server side)"),
          ("batch", "entries per append"),
          ("in flight", "appends already in flight when one is sent"),
          ("roll", "segment roll (seal, open, record), per roll"),
          ("space wait", "waiting for journal space, per append that waited"),
          ("apply wait", "durable → its image write starts"),
          ("apply op", "image write (RADOS), per entry")]
for case in ("N1", "N1p"):
    print(f"Where {case}'s time goes (journal writer statistics, medians over repetitions; µs unless a count):\n")
    print("| phase | QD1 mean | QD1 p99 | QD16 mean | QD16 p99 | seq mean | seq p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    per = {wl: [stats(rep, case, wl) for rep in range(1, reps + 1)] for wl in ("qd1", "qd16", "seq")}
    for key, what in phases:
        cells = []
        for wl in ("qd1", "qd16", "seq"):
            got = [s[key] for s in per[wl] if key in s and s[key][0] > 0]
            cells += [f"{med([g[1] for g in got]):.0f}", f"{med([g[3] for g in got]):.0f}"] if got else ["–", "–"]
        print(f"| {key}: {what} | " + " | ".join(cells) + " |")
    fio_lat = {wl: med([job(rep, case, wl)["lat_ns"]["mean"] / 1e3 for rep in range(1, reps + 1)]) for wl in ("qd1", "qd16", "seq")}
    print("| fio's latency (client side), mean | " + " | ".join(f"{fio_lat[wl]:.0f} | –" for wl in ("qd1", "qd16", "seq")) + " |")
    print()
lags = []
for rep in range(1, reps + 1):
    for wl in ("qd1", "qd16", "seq"):
        try:
            with open(f"{out}/{rep}-N1-{wl}.status") as f:
                s = json.load(f)
            lags.append((wl, s["head"] - s["applied"], s["bytes"]))
        except (OSError, ValueError, KeyError):
            pass
if lags:
    worst = {wl: max((l for l in lags if l[0] == wl), key=lambda l: l[1], default=None) for wl in ("qd1", "qd16", "seq")}
    print("N1 applier lag when each workload ended (worst repetition): " + "; ".join(
        f"{wl}: {w[1]} entries, journal {w[2] / 2**20:.0f} MiB" for wl, w in worst.items() if w) + ".\n")
EOF
}

{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "Ceph: $(ceph --version | cut -d' ' -f1-3), 1 mon + 1 osd (bluestore on a sparse file), pool size 1"
    echo "Command: scripts/bench.sh $*"
    echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    if ((compare)); then
        RBD_CG_BIN=$ours cargo bench --locked -q -p rbd_cg_client --bench compare -- "$@"
        echo
    fi
    if ((datapath)); then
        echo "fio $(fio --version | sed 's/^fio-//'), images ${size_mib} MiB with default features, filled first" >&2
        datapath_bench "${reps:-3}"
    fi
} | tee target/bench-report.md
