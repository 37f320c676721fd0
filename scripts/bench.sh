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
# With --mirror (and nothing else), group mirroring (issue #13, "Speed") instead, on two
# throwaway clusters side by side (target/bench-mirror-a = primary, -b = secondary, both
# destroyed at the end), against stock rbd-mirror (Debian package rbd-mirror, installed if
# missing) in journal mode on one image:
#  1. replay throughput: MiB written while the daemon is stopped (ours: fio through
#     `rbd-cg nbd serve`, groups of 1 and of 4 members; stock: `rbd bench` on a journaled
#     image), then the time from the daemon's start until it has applied the last entry;
#  2. lag: the peak of our journaled write path (4 KiB random writes, QD16), then
#     `seconds_behind` sampled every 0.5 s during 30 s of writes at half that rate;
#  3. catch-up: 20 s of backlog at that rate with our daemon stopped, then the daemon started
#     while the writes go on; its replay rate against the incoming rate;
#  4. bootstrap: our first copy of 2 members holding data against
#     `rbd export-diff img@snap - | rbd -c B import-diff - img` of the same images.
# It uses the debug build by default (RBD_CG_BENCH_PROFILE=release for a release build); the
# report goes to stdout and target/bench-mirror-report.md, raw data to target/bench-mirror/.
#
# Usage: scripts/bench.sh [--reps N] [--scale] [--no-compare] [--no-round-trip]
#                         [--datapath | --datapath-only] [--runtime SECONDS]
#        scripts/bench.sh --mirror
#   --reps N        repetitions (compare: default 7; data path: default 3)
#   --datapath      add the data-path benchmark; --datapath-only runs only that
#   --runtime S     seconds per fio workload (default 20, after a 3 s ramp)
#   --mirror        the group mirroring benchmark (only that)
# Environment: RBD_CG_BENCH_DIR (cluster directory, default target/bench-cluster);
#   --mirror: RBD_CG_BENCH_PROFILE (debug|release), RBD_CG_BENCH_MIRROR_MIB (replay volume,
#   default 256), RBD_CG_BENCH_MIRROR_BS (replay write size, default 64k),
#   RBD_CG_BENCH_MIRROR_BOOT_MIB (bootstrap member size, default 512).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=${RBD_CG_BENCH_DIR:-$repo/target/bench-cluster}

compare=1 datapath=0 mirror=0 reps='' runtime=20
args=("$@")
for ((i = 0; i < $#; i++)); do
    case ${args[i]} in
        --datapath) datapath=1 ;;
        --datapath-only) datapath=1 compare=0 ;;
        --reps) reps=${args[i + 1]:-} ;;
        --runtime) runtime=${args[i + 1]:-} ;;
        --mirror) mirror=1 ;;
    esac
done
[[ -z $reps || $reps =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --reps wants a positive number" >&2; exit 2; }
[[ $runtime =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --runtime wants a positive number of seconds" >&2; exit 2; }

# ---- group mirroring (--mirror) ----------------------------------------------------------
#
# Two throwaway clusters side by side: A (primary) and B (secondary, where the daemons run).
# Every case of ours uses its own namespace (same name on both sides) so that each daemon run
# sees one group; stock rbd-mirror uses pool-level image mode on pool rbd's root.

m_out=$repo/target/bench-mirror
m_dir_a=$repo/target/bench-mirror-a
m_dir_b=$repo/target/bench-mirror-b
m_mib=${RBD_CG_BENCH_MIRROR_MIB:-256}       # replay: MiB written while the daemon is stopped
m_bs=${RBD_CG_BENCH_MIRROR_BS:-64K}         # replay: write size
m_boot_mib=${RBD_CG_BENCH_MIRROR_BOOT_MIB:-512}  # bootstrap: size of each of the 2 members
m_lag_secs=${RBD_CG_BENCH_MIRROR_LAG_SECS:-30} m_backlog_secs=${RBD_CG_BENCH_MIRROR_BACKLOG_SECS:-20} m_catchup_max=90
m_daemon_pid='' m_server_pid='' m_stock_pid='' m_fio_pid='' m_sampler_pid=''

m_now() { date +%s.%N; }
m_sub() { python3 -c 'import sys; print(f"{float(sys.argv[1]) - float(sys.argv[2]):.3f}")' "$1" "$2"; }
# m_json EXPR: evaluates EXPR with d = the JSON document on stdin.
m_json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
m_load() { cut -d' ' -f1 /proc/loadavg; }
m_rec() { echo "$1 $2" >>"$m_out/results"; }
m_stop() {  # PID: TERM, then wait for it
    [[ -n ${1:-} ]] || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
m_cleanup() {
    m_stop "$m_sampler_pid"; m_stop "$m_fio_pid"; m_stop "$m_daemon_pid"; m_stop "$m_server_pid"; m_stop "$m_stock_pid"
    scripts/cluster.sh destroy "$m_dir_a" >/dev/null 2>&1 || true
    scripts/cluster.sh destroy "$m_dir_b" >/dev/null 2>&1 || true
}
m_die() { echo "bench.sh: $*" >&2; exit 1; }

m_status() { "$m_cg" -c "$m_b" mirror status --format json "rbd/$1/g"; }
m_head() { "$m_cg" -c "$m_a" journal status --format json "rbd/$1/g" | m_json 'd["head"]'; }

# Each daemon serves its metrics on a fresh port: they are what ours is sampled by while it runs
# (a curl is much lighter on these 2 cores than an `rbd-cg mirror status` process).
m_start_daemon() {  # NS LOG
    m_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    RUST_LOG=info "$m_cg" -c "$m_b" mirror daemon --peer-conf "$m_a" --pool "rbd/$1" \
        --metrics "127.0.0.1:$m_port" >>"$2" 2>&1 &
    m_daemon_pid=$!
}
# m_metrics NAME...: the values of our daemon's metrics rbd_cg_mirror_NAME (0 when not there yet).
m_metrics() {
    local text
    text=$(curl -sf "http://127.0.0.1:$m_port/metrics" 2>/dev/null) || text=''
    awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
        { for (i = 1; i <= n; i++) if (index($1, "rbd_cg_mirror_" want[i] "{") == 1) got[i] = $2 }
        END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (i in got ? got[i] : 0); print "" }' <<<"$text"
}
m_stop_daemon() { m_stop "$m_daemon_pid"; m_daemon_pid=''; }
m_start_server() {  # NS LOG
    local sock=$m_out/$1.sock
    rm -f "$sock"
    RUST_LOG=info "$m_cg" -c "$m_a" nbd serve "rbd/$1/g" --socket "$sock" >>"$2" 2>&1 &
    m_server_pid=$!
    for _ in $(seq 100); do
        [[ -S $sock ]] && return 0
        kill -0 "$m_server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$2" >&2
    m_die "nbd serve of rbd/$1/g did not start"
}
m_stop_server() { m_stop "$m_server_pid"; m_server_pid=''; }

# m_wait_state NS STATE TIMEOUT LOG: until our copy on B is in STATE.
m_wait_state() {
    local s i
    for ((i = 0; i < $3 * 4; i++)); do
        s=$(m_status "$1" 2>/dev/null) || s=''
        [[ -n $s ]] && [[ $(m_json 'd["state"]' <<<"$s") == "$2" ]] && return 0
        kill -0 "$m_daemon_pid" 2>/dev/null || { tail -20 "$4" >&2; m_die "the daemon for rbd/$1 exited"; }
        sleep 0.25
    done
    tail -20 "$4" >&2
    m_die "rbd/$1/g not $2 after $3 s"
}

# m_group NS MEMBERS SIZE_MIB: a journaled, mirrored group rbd/NS/g with members m0.. on A.
m_group() {
    local ns=$1 k
    rbd -c "$m_a" namespace create "rbd/$ns"
    rbd -c "$m_b" namespace create "rbd/$ns"
    "$m_cg" -c "$m_a" create "rbd/$ns/g"
    for ((k = 0; k < $2; k++)); do
        rbd -c "$m_a" create --size "$3M" "rbd/$ns/m$k"
        "$m_cg" -c "$m_a" image add "rbd/$ns/g" "rbd/$ns/m$k" >/dev/null
    done
    "$m_cg" -c "$m_a" journal enable "rbd/$ns/g" >/dev/null
    "$m_cg" -c "$m_a" mirror enable --mode journal "rbd/$ns/g" >/dev/null
}

# m_fio NS MEMBERS OUTPUT.json FIO-ARGS...: fio's nbd engine, one job per member, through the
# running nbd serve of rbd/NS/g.
m_fio() {
    local ns=$1 members=$2 json=$3 k jobs=()
    shift 3
    for ((k = 0; k < members; k++)); do
        jobs+=(--name="m$k" --uri="nbd+unix:///rbd/$ns/m$k?socket=$m_out/$ns.sock")
    done
    fio --ioengine=nbd --thread --direct=1 --group_reporting --output-format=json --output="$json" "$@" "${jobs[@]}" >/dev/null
}
m_fio_iops() {
    python3 -c 'import json, sys; t = open(sys.argv[1]).read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["write"]["iops"]))' "$1"
}

# 1a. Ours: replay of MIB MiB written to a group of M members while the daemon was stopped.
m_replay_ours() {
    local members=$1 ns=r$1 log=$m_out/r$1.log per k
    per=$((m_mib / members))
    echo "== mirror: replay, ours, $members member(s), $m_mib MiB in $m_bs writes" >&2
    m_group "$ns" "$members" "$per"
    m_start_daemon "$ns" "$log"
    m_wait_state "$ns" replaying 120 "$log"
    m_stop_daemon
    m_start_server "$ns" "$m_out/r$members-serve.log"
    m_fio "$ns" "$members" "$m_out/r$members-write.json" --rw=randwrite --bs="$m_bs" --iodepth=$((16 / members)) \
        --size="${per}M"
    m_stop_server
    local head start applied s t0 t first='' first_pos=0 load0 deadline=$((SECONDS + 900))
    head=$(m_head "$ns")
    start=$(m_status "$ns" | m_json 'd["mirror_position"]')
    load0=$(m_load)
    t0=$(m_now)
    m_start_daemon "$ns" "$log"
    while :; do
        applied=$(m_metrics entries_replayed_total)
        applied=${applied%.*}
        t=$(m_now)
        if [[ -z $first ]] && ((applied > 0)); then first=$t first_pos=$((start + applied)); fi
        ((start + applied >= head)) && break
        ((SECONDS < deadline)) || m_die "replay of rbd/$ns/g not done after 900 s"
        kill -0 "$m_daemon_pid" 2>/dev/null || { tail -20 "$log" >&2; m_die "the daemon for rbd/$ns exited"; }
        sleep 0.1
    done
    for _ in $(seq 40); do  # the counter may run ahead of the recorded position by a moment
        s=$(m_status "$ns" | m_json 'd["mirror_position"]')
        ((s >= head)) && break
        sleep 0.25
    done
    ((s >= head)) || m_die "rbd/$ns/g: the daemon counted $applied entries, but its position is $s, not $head"
    m_stop_daemon
    m_rec "ours$members.entries" $((head - start))
    m_rec "ours$members.secs" "$(m_sub "$t" "$t0")"
    m_rec "ours$members.first" "$(m_sub "${first:-$t}" "$t0")"
    m_rec "ours$members.steady_entries" "$([[ -n $first ]] && echo $((head - first_pos)) || echo 0)"
    m_rec "ours$members.steady_secs" "$(m_sub "$t" "${first:-$t0}")"
    m_rec "ours$members.load" "$load0 $(m_load)"
}

# The stock journal positions on A: "TAG ENTRY" of the master (the writer) or of the mirror peer.
m_stock_pos() {  # master|peer
    rbd -c "$m_a" journal status --image rbd/stock --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for c in d["registered_clients"]:
    if (c["id"] == "") == (sys.argv[1] == "master"):
        ps = c["commit_position"]["object_positions"]
        p = max(((p["tag_tid"], p["entry_tid"]) for p in ps), default=(0, -1))
        print(*p)
        break
else:
    print("none")' "$1"
}

m_start_stock() {
    CEPH_CONF=$m_b rbd-mirror -c "$m_b" --id admin -f --rbd_mirror_journal_commit_age 0.5 \
        --log-file "$m_out/rbd-mirror.log" >>"$m_out/rbd-mirror.out" 2>&1 &
    m_stock_pid=$!
}

# 1b. Stock rbd-mirror, journal mode, one image: the same volume written with rbd bench.
m_replay_stock() {
    echo "== mirror: replay, stock rbd-mirror, 1 image, $m_mib MiB in $m_bs writes" >&2
    rbd -c "$m_a" mirror pool enable --site-name site-a rbd image
    rbd -c "$m_b" mirror pool enable --site-name site-b rbd image
    ceph -c "$m_a" auth get-key client.admin >"$m_out/a.key"
    local mon
    mon=$(sed -n 's/^[[:space:]]*mon host = //p' "$m_a" | head -1)
    rbd -c "$m_b" mirror pool peer add rbd client.admin@site-a --remote-mon-host "$mon" \
        --remote-key-file "$m_out/a.key" >/dev/null
    rbd -c "$m_a" create --size "${m_mib}M" \
        --image-feature layering,exclusive-lock,object-map,fast-diff,deep-flatten,journaling rbd/stock
    rbd -c "$m_a" mirror image enable rbd/stock journal >/dev/null
    m_start_stock
    local i s
    for ((i = 0; i < 480; i++)); do
        s=$(rbd -c "$m_b" mirror image status rbd/stock --format json 2>/dev/null) || s=''
        [[ $s == *'"up+replaying"'* ]] && [[ $(m_stock_pos peer) != none ]] && break
        kill -0 "$m_stock_pid" 2>/dev/null || { tail "$m_out/rbd-mirror.out" >&2; m_die "rbd-mirror exited"; }
        sleep 0.25
    done
    [[ $s == *'"up+replaying"'* ]] || { tail "$m_out/rbd-mirror.out" >&2; m_die "stock rbd-mirror never replayed rbd/stock"; }
    m_stop "$m_stock_pid"; m_stock_pid=''
    rbd -c "$m_a" bench --io-type write --io-size "${m_bs^^}" --io-threads 16 --io-total "${m_mib}M" --io-pattern rand \
        rbd/stock >"$m_out/stock-write.txt"
    local master peer0 pos t0 t first='' first_pos='' load0 entries deadline=$((SECONDS + 900))
    master=$(m_stock_pos master)
    peer0=$(m_stock_pos peer)
    # Entry tids count per tag: entries to replay are those after the peer's position.
    entries=$(python3 -c 'import sys; mt, me, pt, pe = map(int, sys.argv[1:]); print(me - pe if mt == pt else me + 1)' $master $peer0)
    load0=$(m_load)
    t0=$(m_now)
    m_start_stock
    while :; do
        pos=$(m_stock_pos peer)
        t=$(m_now)
        if [[ -z $first && $pos != "$peer0" ]]; then first=$t first_pos=$pos; fi
        python3 -c 'import sys; sys.exit(tuple(map(int, sys.argv[3:5])) < tuple(map(int, sys.argv[1:3])))' $master $pos && break
        ((SECONDS < deadline)) || m_die "stock replay not done after 900 s"
        kill -0 "$m_stock_pid" 2>/dev/null || { tail "$m_out/rbd-mirror.out" >&2; m_die "rbd-mirror exited"; }
        sleep 0.2
    done
    m_stop "$m_stock_pid"; m_stock_pid=''
    m_rec stock.entries "$entries"
    m_rec stock.master "${master/ /:}"
    m_rec stock.peer0 "${peer0/ /:}"
    m_rec stock.secs "$(m_sub "$t" "$t0")"
    m_rec stock.first "$(m_sub "${first:-$t}" "$t0")"
    m_rec stock.steady_entries "$(python3 -c 'import sys; mt, me, pt, pe = map(int, sys.argv[1:]); print(me - pe if mt == pt else me + 1)' $master ${first_pos:-$master})"
    m_rec stock.load "$load0 $(m_load)"
}

# 2 and 3. Ours, one member, 4 KiB random writes at QD16: the peak, the lag at half of it, and
# the catch-up from a backlog while writes go on at that rate.
m_lag_and_catchup() {
    local ns=lag log=$m_out/lag.log peak half
    echo "== mirror: peak of the journaled write path (4 KiB random writes, QD16, 10 s)" >&2
    m_group "$ns" 1 256
    m_start_server "$ns" "$m_out/lag-serve.log"
    m_fio "$ns" 1 "$m_out/peak.json" --rw=randwrite --bs=4k --iodepth=16 --size=256M --time_based --runtime=10 \
        --ramp_time=2
    peak=$(m_fio_iops "$m_out/peak.json")
    half=$((peak / 2))
    m_rec peak.iops "$peak"
    m_start_daemon "$ns" "$log"
    m_wait_state "$ns" replaying 300 "$log"
    # Let it catch up with the peak run first.
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ $(m_status "$ns" | m_json 'd["entries_behind"]') == 0 ]] && break
        sleep 0.25
    done
    echo "== mirror: lag at half the peak ($half IOPS) for $m_lag_secs s" >&2
    local load0
    load0=$(m_load)
    m_fio "$ns" 1 "$m_out/lag.json" --rw=randwrite --bs=4k --iodepth=16 --size=256M --time_based \
        --runtime=$((m_lag_secs + 2)) --rate_iops="$half" &
    m_fio_pid=$!
    sleep 2
    local next t s
    next=$(m_now)
    : >"$m_out/lag.samples"
    # Every 0.5 s while the writes go on: seconds_behind, entries_behind, time.
    for ((i = 0; i < m_lag_secs * 2; i++)); do
        kill -0 "$m_fio_pid" 2>/dev/null || break
        echo "$(m_metrics seconds_behind entries_behind) $(m_now)" >>"$m_out/lag.samples"
        next=$(python3 -c 'import sys; print(float(sys.argv[1]) + 0.5)' "$next")
        t=$(m_now)
        sleep "$(python3 -c 'import sys; print(max(0.0, float(sys.argv[1]) - float(sys.argv[2])))' "$next" "$t")"
    done
    wait "$m_fio_pid" || true
    m_fio_pid=''
    m_rec lag.iops "$(m_fio_iops "$m_out/lag.json")"
    m_rec lag.load "$load0 $(m_load)"

    echo "== mirror: catch-up: ${m_backlog_secs} s of backlog at $half IOPS, then the daemon while writes go on" >&2
    m_stop_daemon
    m_fio "$ns" 1 "$m_out/catchup.json" --rw=randwrite --bs=4k --iodepth=16 --size=256M --time_based \
        --runtime=$((m_backlog_secs + m_catchup_max)) --rate_iops="$half" &
    m_fio_pid=$!
    sleep 2
    local h0 th0 h1 th1 p0 replayed=0 behind t0 done=0
    h0=$(m_head "$ns"); th0=$(m_now)
    sleep $((m_backlog_secs - 2))
    h1=$(m_head "$ns"); th1=$(m_now)
    p0=$(m_status "$ns" | m_json 'd["mirror_position"]')
    load0=$(m_load)
    t0=$(m_now) t=$t0
    m_start_daemon "$ns" "$log"
    while kill -0 "$m_fio_pid" 2>/dev/null; do
        read -r replayed behind < <(m_metrics entries_replayed_total entries_behind)
        replayed=${replayed%.*} behind=${behind%.*}
        t=$(m_now)
        # Caught up: past the backlog and less than half a second of incoming writes behind.
        if ((p0 + replayed >= h1 && behind <= half / 2)); then done=1; break; fi
        sleep 0.25
    done
    local h2 th2
    h2=$(m_head "$ns"); th2=$(m_now)
    m_stop "$m_fio_pid"; m_fio_pid=''
    # The incoming rate while the daemon ran (it competes for the same 2 cores).
    m_rec catchup.incoming_during "$(python3 -c 'import sys; a, b, c, d = map(float, sys.argv[1:]); print(f"{(b - a) / (d - c):.1f}")' "$h1" "$h2" "$t0" "$th2")"
    m_rec catchup.incoming "$(python3 -c 'import sys; a, b, c, d = map(float, sys.argv[1:]); print(f"{(b - a) / (d - c):.1f}")' "$h0" "$h1" "$th0" "$th1")"
    m_rec catchup.backlog $((h1 - p0))
    m_rec catchup.done "$done"
    m_rec catchup.entries "$replayed"
    m_rec catchup.secs "$(m_sub "$t" "$t0")"
    m_rec catchup.load "$load0 $(m_load)"
    m_stop_daemon
    m_stop_server
}

# 4. Bootstrap: our first copy of a group of 2 members holding data against
# export-diff | import-diff of the same images.
m_bootstrap() {
    local ns=boot log=$m_out/boot.log k pids=() t0 t1 load0
    echo "== mirror: bootstrap, 2 x $m_boot_mib MiB" >&2
    for side in "$m_a" "$m_b"; do rbd -c "$side" namespace create rbd/$ns; done
    rbd -c "$m_b" namespace create rbd/bootx
    for k in 0 1; do
        rbd -c "$m_a" create --size "${m_boot_mib}M" "rbd/$ns/m$k"
        rbd -c "$m_b" create --size "${m_boot_mib}M" "rbd/bootx/m$k"
        rbd -c "$m_a" bench --io-type write --io-size 4M --io-threads 4 --io-total "${m_boot_mib}M" \
            --io-pattern seq "rbd/$ns/m$k" >/dev/null &
        pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k"; done
    pids=()
    for k in 0 1; do rbd -c "$m_a" snap create --no-progress "rbd/$ns/m$k@base"; done
    load0=$(m_load)
    t0=$(m_now)
    for k in 0 1; do
        (rbd -c "$m_a" export-diff --no-progress "rbd/$ns/m$k@base" - |
            rbd -c "$m_b" import-diff --no-progress - "rbd/bootx/m$k") &
        pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k"; done
    t1=$(m_now)
    m_rec diff.secs "$(m_sub "$t1" "$t0")"
    m_rec diff.load "$load0 $(m_load)"
    m_rec diff.bytes "$(rbd -c "$m_b" du --format json rbd/bootx/m0 | m_json 'd.get("images", [{}])[0].get("used_size", d)') $(rbd -c "$m_b" du --format json rbd/bootx/m1 | m_json 'd.get("images", [{}])[0].get("used_size", d)')"
    for k in 0 1; do rbd -c "$m_a" snap purge --no-progress "rbd/$ns/m$k"; done
    "$m_cg" -c "$m_a" create "rbd/$ns/g"
    for k in 0 1; do "$m_cg" -c "$m_a" image add "rbd/$ns/g" "rbd/$ns/m$k" >/dev/null; done
    "$m_cg" -c "$m_a" journal enable "rbd/$ns/g" >/dev/null
    "$m_cg" -c "$m_a" mirror enable --mode journal "rbd/$ns/g" >/dev/null
    load0=$(m_load)
    t0=$(m_now)
    m_start_daemon "$ns" "$log"
    m_wait_state "$ns" replaying 900 "$log"
    t1=$(m_now)
    m_stop_daemon
    m_rec boot.secs "$(m_sub "$t1" "$t0")"
    m_rec boot.copy "$(sed -n 's/.*synced from snapshot .* in \([0-9.]*\) s.*/\1/p' "$log" | tail -1)"
    m_rec boot.load "$load0 $(m_load)"
}

mirror_report() {
    python3 - "$m_out/results" "$m_mib" "$m_bs" "$m_boot_mib" "$m_lag_secs" "$m_backlog_secs" <<'EOF'
import statistics, sys
path, mib, bs, boot_mib, lag_secs, backlog_secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
r = {}
for line in open(path):
    k, _, v = line.strip().partition(" ")
    r[k] = v
f = lambda k: float(r[k])
load = lambda k: max(float(x) for x in r[k].split())
mb = mib * 2**20 / 1e6
writes = mib * 2**20 // (int(bs.rstrip("kK")) * 1024)
print(f"### Mirroring: replay, lag, catch-up, bootstrap\n")
print(f"Replay: {mib} MiB written in {bs} random writes while the mirror daemon was stopped "
      f"({writes} writes), then the daemon started; time from its start until its position reached the "
      f"primary's last entry (ours: `mirror_position` of `rbd-cg mirror status` on B; stock: the rbd-mirror "
      f"peer's commit position in `rbd journal status` on A). \"Steady\" leaves out the start-up (until the first "
      f"entry is applied).\n")
print("| case | entries | total time | start-up | MB/s (total) | writes/s (total) | journal entries/s (total) | MB/s (steady) | load avg |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
rows = {}
for key, name in (("ours1", "ours, group of 1 member"), ("ours4", "ours, group of 4 members"), ("stock", "stock rbd-mirror, 1 image")):
    if f"{key}.secs" not in r:
        continue
    secs, first = f(f"{key}.secs"), f(f"{key}.first")
    steady = secs - first
    part = int(r[key + ".steady_entries"]) / int(r[key + ".entries"])
    rows[key] = (mb / secs, mb * part / steady if steady > 0 and part > 0 else float("nan"))
    print(f"| {name} | {r[key + '.entries']} | {secs:.1f} s | {first:.1f} s | {mb / secs:.1f} | {writes / secs:.0f} | "
          f"{int(r[key + '.entries']) / secs:.0f} | {rows[key][1]:.1f} | {load(key + '.load'):.1f} |")
print()
if "stock" in rows:
    for key in ("ours1", "ours4"):
        if key in rows:
            print(f"- {key} / stock: {rows[key][0] / rows['stock'][0]:.2f} (total), {rows[key][1] / rows['stock'][1]:.2f} (steady)")
if "ours1" in rows and "ours4" in rows:
    print(f"- ours4 / ours1: {rows['ours4'][0] / rows['ours1'][0]:.2f} (total), {rows['ours4'][1] / rows['ours1'][1]:.2f} (steady)")
print()
if "peak.iops" in r:
    samples = [tuple(map(float, l.split())) for l in open(path.rsplit("/", 1)[0] + "/lag.samples") if l.strip()]
    span = samples[-1][2] - samples[0][2] if len(samples) > 1 else 0.0
    secs = sorted(s[0] for s in samples)
    ents = sorted(s[1] for s in samples)
    q = lambda xs, p: xs[min(len(xs) - 1, max(0, int(round(p * len(xs) + 0.5)) - 1))]
    print(f"Lag: peak of the journaled write path (fio nbd, 4 KiB random writes, QD16, 1 member): {r['peak.iops']} IOPS; "
          f"then {lag_secs} s at half of it (achieved {r['lag.iops']} IOPS), `seconds_behind` sampled every 0.5 s "
          f"from the daemon's metrics ({len(samples)} samples over {span:.1f} s): p50 {q(secs, 0.5):.1f} s, p99 {q(secs, 0.99):.1f} s, max {secs[-1]:.1f} s; "
          f"entries_behind p50 {q(ents, 0.5):.0f}, p99 {q(ents, 0.99):.0f}; load avg {load('lag.load'):.1f}.\n")
if "catchup.secs" in r:
    inc, inc2 = f("catchup.incoming"), f("catchup.incoming_during")
    speed = int(r["catchup.entries"]) / f("catchup.secs")
    state = "caught up" if r["catchup.done"] == "1" else "**not caught up** before the writes stopped"
    print(f"Catch-up: {backlog_secs} s of writes at half the peak with the daemon stopped ({inc:.0f} entries/s, backlog "
          f"{r['catchup.backlog']} entries), then the daemon started while the writes went on ({inc2:.0f} entries/s "
          f"meanwhile): {state} after {f('catchup.secs'):.1f} s, {r['catchup.entries']} entries applied, {speed:.0f} "
          f"entries/s: ratio {speed / inc:.2f} against the set rate, {speed / inc2:.2f} against the rate achieved while "
          f"the daemon ran; load avg {load('catchup.load'):.1f}.\n")
if "boot.secs" in r:
    print(f"Bootstrap: 2 × {boot_mib} MiB members full of data (rbd bench, 4 MiB sequential). "
          f"`rbd export-diff @snap - | rbd -c B import-diff -` of both images in parallel: {f('diff.secs'):.1f} s "
          f"(load avg {load('diff.load'):.1f}); our first copy, from the daemon's start until `replaying`: "
          f"{f('boot.secs'):.1f} s (the copy itself, by the daemon's log: {r.get('boot.copy') or '?'} s; load avg "
          f"{load('boot.load'):.1f}). Ratio ours / export-diff|import-diff: {f('boot.secs') / f('diff.secs'):.2f} "
          f"(copy only: {float(r['boot.copy']) / f('diff.secs'):.2f}).\n" if r.get('boot.copy') else
          f"Bootstrap: export-diff|import-diff {f('diff.secs'):.1f} s, ours {f('boot.secs'):.1f} s: ratio {f('boot.secs') / f('diff.secs'):.2f}.\n")
EOF
}

mirror_bench() {
    command -v rbd-mirror >/dev/null || {
        echo "bench.sh: --mirror compares with stock rbd-mirror: installing the Debian package rbd-mirror" >&2
        local sudo_cmd=()
        [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends rbd-mirror >/dev/null
    }
    local profile=${RBD_CG_BENCH_PROFILE:-debug} flags=()
    [[ $profile == release ]] && flags=(--release)
    echo "== building ($profile)" >&2
    cargo build "${flags[@]}" --locked -p cls_rbd_cg -p rbd_cg_cli
    rm -rf "$m_out"
    mkdir -p "$m_out/bin"
    # Copies: other builds may replace target/*/ binaries while this runs.
    cp "$repo/target/$profile/rbd-cg" "$m_out/bin/rbd-cg"
    cp "$repo/target/$profile/libcls_rbd_cg.so" "$m_out/bin/libcls_rbd_cg.so"
    m_cg=$m_out/bin/rbd-cg
    trap m_cleanup EXIT
    scripts/cluster.sh destroy "$m_dir_a" >/dev/null 2>&1 || true
    scripts/cluster.sh destroy "$m_dir_b" >/dev/null 2>&1 || true
    local pa pb
    scripts/cluster.sh start "$m_dir_a" --class "$m_out/bin/libcls_rbd_cg.so" >"$m_out/cluster-a.log" 2>&1 & pa=$!
    scripts/cluster.sh start "$m_dir_b" --class "$m_out/bin/libcls_rbd_cg.so" >"$m_out/cluster-b.log" 2>&1 & pb=$!
    wait "$pa" || { cat "$m_out/cluster-a.log" >&2; m_die "cluster A did not start"; }
    wait "$pb" || { cat "$m_out/cluster-b.log" >&2; m_die "cluster B did not start"; }
    m_a=$m_dir_a/ceph.conf m_b=$m_dir_b/ceph.conf
    export CEPH_CONF=$m_a
    {
        echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
        echo "Ceph: $(ceph --version | cut -d' ' -f1-3); two clusters on this machine, each 1 mon + 1 osd (bluestore on a sparse file) + 1 mgr, pool size 1"
        echo "rbd-cg: $profile build; fio $(fio --version | sed 's/^fio-//'); rbd-mirror $(rbd-mirror --version | cut -d' ' -f3)"
        echo "Command: scripts/bench.sh $*"
        echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
    } >"$m_out/header"
    : >"$m_out/results"
    local started
    started=$(m_now)
    m_replay_ours 1
    m_replay_stock
    m_replay_ours 4
    m_lag_and_catchup
    m_bootstrap
    m_rec total.secs "$(m_sub "$(m_now)" "$started")"
    {
        cat "$m_out/header"
        mirror_report
        echo "Run time: $(sed -n 's/^total.secs //p' "$m_out/results") s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee target/bench-mirror-report.md
}

if ((mirror)); then
    scripts/deps.sh
    mirror_bench "$@"
    exit 0
fi

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
