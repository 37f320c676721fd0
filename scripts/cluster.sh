#!/usr/bin/env bash
# cluster.sh - a throwaway single-node Ceph cluster (1 mon + N osds [+ 1 mgr]) for demos and
# integration tests of the rbd_cg object class.  Ceph 16.2 Pacific from Debian packages, run as
# root, no systemd, loopback only.  The settings rest on facts measured on this kind of machine
# (kept outside the repo in /work/shared/ceph-facts.md; "facts" below).
#
# Usage:
#   cluster.sh start         DIR [--osds N] [--class PATH/libcls_X.so] [--no-mgr]
#   cluster.sh stop          DIR
#   cluster.sh status        DIR
#   cluster.sh install-class DIR PATH/libcls_X.so [--osd ID] [--no-restart]
#   cluster.sh restart-osd   DIR [ID]  # no ID: every OSD, one after another
#   cluster.sh stop-osd      DIR ID    # SIGTERM: the OSD tells the mon it goes down
#   cluster.sh kill-osd      DIR ID    # SIGKILL, as a crash or a power loss would
#   cluster.sh start-osd     DIR ID... # start stopped or killed OSDs; wait until all are ready
#   cluster.sh osds          DIR       # the OSD ids of DIR, one per line
#   cluster.sh env           DIR       # eval "$(cluster.sh env DIR)" -> CEPH_CONF for rados/rbd/librados
#   cluster.sh destroy       DIR       # stop + rm -rf DIR
#
# Semantics:
#   start   creates the cluster if DIR is missing/empty, with N OSDs (--osds, default 1; pools of
#           size min(N, 3), min_size 2 once N >= 3, else 1); if DIR holds a cluster that was fully
#           bootstrapped before, it restarts the stopped daemons ON THE EXISTING DATA (bluestore
#           survives restarts; --osds must then match or be left out); a running cluster is left
#           alone (no-op).  A half-bootstrapped DIR (an earlier start that failed) is wiped and
#           recreated.  With --class the .so is installed first; OSDs already running whose copy
#           changed are restarted, one after another.
#           Returns once every OSD reports itself active, pool `rbd` is usable (all its PGs
#           active) and, with a mgr, `ceph pg stat` reports every PG active+clean.  Timeout:
#           $CLUSTER_SH_TIMEOUT seconds (default 60, +20 per OSD beyond the first), then it fails
#           printing the tail of the relevant daemon log (daemons are left running for inspection;
#           `stop`/`destroy` them, a later `start` wipes the half-made cluster).
#   stop    TERM to the PIDs in DIR/run/*.pid (only if that PID really is a daemon started with
#           DIR/ceph.conf), waits up to 10 s, then KILL.  Never kills by name; DIR stays.
#   install-class  copy-then-rename into each OSD's class dir (DIR/classes/osd.N; --osd: only
#           that one) -- a new inode: a running OSD keeps the old file mapped.  Then restarts,
#           one at a time and waiting for the cluster to be ready after each, every running OSD
#           whose copy changed (--no-restart: none; the new class then loads at the next restart
#           -- or at the OSD's first call of the class, if it never loaded it: classes load
#           lazily).  Each OSD has its own class dir, like each host of a real cluster, so that a
#           rolling upgrade can be played OSD by OSD.
#   restart-osd / stop-osd / kill-osd / start-osd  work on the OSD ids of DIR (see `osds`).
#           restart-osd and start-osd return once the cluster is ready again (as `start`);
#           kill-osd returns once the process is gone, without waiting for the mon to notice
#           (the other OSDs report it at once: connection refused).  A pool of size 3 and
#           min_size 2 keeps serving I/O with one OSD down; with two down its PGs wait.
#   A DIR that is non-empty and was not created by this script is refused (never wiped).
#
# Layout of DIR (always made absolute):
#   ceph.conf                      the only config; clients need just CEPH_CONF=DIR/ceph.conf
#   ceph.client.admin.keyring      client.admin key, referenced by [global] keyring
#   mon.a/  osd.N/  mgr.x/         daemon data dirs, each with its own `keyring`
#   osd.N/block.img                bluestore device: 10 GiB sparse file
#   osd-count                      N, fixed at bootstrap (absent in clusters made before --osds: 1)
#   classes/osd.N/                 osd.N's class dir: symlinks to stock libcls_*.so + our copies
#                                  (clusters made before per-OSD class dirs: one classes/ for all)
#   log/                           $name.log daemon logs, ceph.*.log cluster log, $name.out and
#                                  $name.mkfs.out: stdout/stderr of daemon start and of mkfs
#   run/                           $name.pid pid files, $name.asok admin sockets
#   crash/                         crash dumps (instead of /var/lib/ceph/crash)
#   .cluster-sh-managed            ownership marker (+ lock file); .bootstrapped when complete
#
# Why the non-obvious settings (see facts):
#   - mon on 127.0.0.1, msgr v2 only, port picked in 16789..19999 (hash of DIR, first free one):
#     a port in the ephemeral range (32768-60999) once failed with EADDRINUSE.  The port is
#     written into ceph.conf and the monmap, so a restart reuses it.
#   - bluestore on a sparse file, not memstore: memstore loses everything on OSD restart, and a
#     rebuilt class is only picked up by restarting the OSD.  block path must be .../block.img
#     (.../block gives ELOOP).
#   - mon allow pool size one / no-redundancy warning off / chooseleaf type 0 (replicas on OSDs,
#     not hosts: there is one host): a one-OSD cluster that still reaches HEALTH_OK.  Pool
#     default size min(N, 3), min size 2 from N = 3 on (Ceph's own defaults for 3 replicas).
#     Insecure global id reclaim off: otherwise a permanent health warning.  pg autoscale off:
#     no PG splitting behind our back.
#   - mon osd reporter subtree level = osd, min down reporters = 1: the mon otherwise wants
#     failure reports from two *hosts* before it marks an OSD down, and there is one host; an
#     OSD that dies without a word (kill -9) would stay "up" until its beacons time out
#     (15 min), and every op on its PGs would wait that long.
#   - osd class load list / default list = *: Pacific refuses to load (EPERM) classes that are
#     not listed, and clients with `profile rbd` caps get EPERM for classes outside the default
#     list.  osd class dir must also contain the stock classes (rbd needs cls_rbd, cls_lock).
#   - admin socket / pid file / log file only in daemon sections: in [global] every CLI client
#     would fight over the same socket.
#   - osd memory target = 896 MiB: the minimum Pacific accepts (512 MiB is rejected; default
#     4 GiB).  With cache autotuning (default) it also bounds the bluestore cache.  An idle OSD
#     here has ~50 MB RSS; CI machines have 2 cores / 24 GiB.
#   - paxos propose interval = 0.1 (default 1 s): every map change (osd new, pool create, OSD boot,
#     application enable) commits sooner; cold start ~2 s faster.  bluestore fsck on mkfs = false:
#     -0.5 s.  ms bind msgr1 = false: the mon only speaks v2, so v1 ports are just clutter.
#   - `start` waits for each OSD's own admin socket to report "active" before probing with a
#     client: after an OSD died without telling the mon (kill -9, crash) a client would otherwise
#     keep the stale map and stall ~10 s (objecter_timeout).
#   - osd recovery sleep = 0, osd snap trim sleep = 0: bluestore on a file counts as a hard disk,
#     whose defaults pause 0.1 s between recovery ops and 5 s between snapshot trims.  An OSD
#     restarted under load then took minutes to be clean again (8 objects/s) and snapshot
#     trimming never caught up with the tests' snapshot churn.
#   - mon data avail warn/crit lowered: the mon refuses to run on a disk with <5% free.
#   - mgr stats period = 1: `ceph -s` / `ceph pg stat` catch up within ~1 s instead of 5 s.
#   - ceph-osd --mkfs does not write the OSD keyring: we generate all keys with ceph-authtool and
#     import them into the mon keyring before `ceph-mon --mkfs`, so no `ceph auth` calls needed.
#     The OSDs' mkfs runs in parallel with each other and with the mon's.
set -Eeuo pipefail

PROG=cluster.sh
STOCK_CLASS_DIR=/usr/lib/x86_64-linux-gnu/rados-classes
TIMEOUT=${CLUSTER_SH_TIMEOUT:-60}
PORT_MIN=16789
PORT_MAX=19999
MON=mon.a
MGR=mgr.x
PG_NUM=8
MAX_OSDS=16

# Our own calls must reach *this* cluster as client.admin, whatever the caller's environment says.
unset CEPH_ARGS CEPH_KEYRING

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

usage() {
    sed -n '/^# Usage:/,/^# *$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# paths

set_dir() {
    [[ -n ${1:-} ]] || usage
    DIR=$(realpath -m -- "$1")
    case "$DIR" in
        / | /root | /home | /tmp | /usr | /var | /etc | /work | "${HOME:-/root}") die "refusing to use $DIR as cluster dir" ;;
    esac
    CONF=$DIR/ceph.conf
    MARKER=$DIR/.cluster-sh-managed
    BOOTSTRAPPED=$DIR/.bootstrapped
    RUN=$DIR/run
    LOGD=$DIR/log
    CLASSES=$DIR/classes
    OSD_COUNT_FILE=$DIR/osd-count
}

# The number of OSDs of DIR: fixed at bootstrap; 1 for clusters made before --osds existed.
osd_count() {
    local n=1
    [[ -s $OSD_COUNT_FILE ]] && n=$(tr -dc '0-9' <"$OSD_COUNT_FILE")
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)) || n=1
    echo "$n"
}

osd_names() { # osd.0 .. osd.N-1
    local i n
    n=$(osd_count)
    for ((i = 0; i < n; i++)); do echo "osd.$i"; done
}

osd_name() { # ID -> osd.ID, checked against DIR's OSDs
    local id=${1:-}
    id=${id#osd.}
    if ! [[ $id =~ ^[0-9]+$ ]] || ((id >= $(osd_count))); then
        die "no OSD ${1:-<missing id>} in $DIR (ids: $(osd_names | sed 's/osd\.//' | tr '\n' ' '))"
    fi
    echo "osd.$id"
}

# The class dir of one OSD: its own (DIR/classes/osd.N), or the one shared dir of a cluster
# bootstrapped before per-OSD dirs (recognised by its ceph.conf).
class_dir() { # NAME
    # shellcheck disable=SC2016 # a literal $name, as ceph.conf has it
    if [[ -e $CONF ]] && grep -q '^osd class dir = .*/\$name$' "$CONF"; then
        echo "$CLASSES/$1"
    else
        echo "$CLASSES"
    fi
}

# Refuse a non-empty directory that this script did not create.
check_owned() {
    if [[ -e $DIR && ! -d $DIR ]]; then die "$DIR exists and is not a directory"; fi
    if [[ -d $DIR && ! -e $MARKER ]] && [[ -n $(ls -A -- "$DIR") ]]; then
        die "$DIR is not empty and was not created by $PROG; refusing to touch it"
    fi
}

# Serialise concurrent invocations on the same DIR.  fd 9 must not leak into daemons.
take_lock() {
    mkdir -p -- "$DIR"
    [[ -e $MARKER ]] || echo "managed by $PROG; do not remove" >"$MARKER"
    exec 9>>"$MARKER"
    flock -w 300 9 || die "could not lock $MARKER"
}

# ---------------------------------------------------------------------------------------------
# processes: identified only by pid file + /proc/PID/cmdline naming our conf

alive() { # PID -> true while any thread of the process exists and is not a zombie
    # Not only the thread-group leader: an exiting OSD's main thread can be a zombie while
    # its other threads still run and still hold bluestore's fsid lock.
    local st task
    [[ -d /proc/$1/task ]] || return 1
    for task in /proc/"$1"/task/*/stat; do
        st=$(<"$task") 2>/dev/null || continue
        st=${st##*) }
        [[ ${st:0:1} != Z ]] && return 0
    done
    return 1
}

daemon_pid() { # NAME (mon.a|osd.N|mgr.x) -> prints pid if that daemon of DIR is running
    local name=$1 pidf=$RUN/$1.pid pid cmd
    [[ -s $pidf ]] || return 1
    pid=$(tr -dc '0-9' <"$pidf")
    [[ -n $pid ]] && alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"ceph-${name%%.*} "* && $cmd == *" $CONF "* && $cmd == *" -i ${name#*.} "* ]] || return 1
    echo "$pid"
}

running() { daemon_pid "$1" >/dev/null; }

start_daemon() { # NAME
    local name=$1 type=${1%%.*} id=${1#*.}
    if running "$name"; then return 0; fi
    rm -f -- "$RUN/$name.pid" "$RUN/$name.asok"
    # The daemons fork themselves; the parent exits once the child has initialised (or failed).
    if ! "ceph-$type" -c "$CONF" -i "$id" </dev/null >>"$LOGD/$name.out" 2>&1 9>&-; then
        show_log "$name"
        die "ceph-$type -i $id failed to start"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        running "$name" && return 0
        sleep 0.1
    done
    show_log "$name"
    die "$name did not stay up"
}

start_osds() { # NAME... : in parallel (each initialises its bluestore for seconds)
    local osd pids=() failed=0 pid
    for osd in "$@"; do
        start_daemon "$osd" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "an OSD failed to start"
}

wait_gone() { # PID... : wait (<=30 s) until none is alive; prints the ones still alive
    local pids=("$@") i pid
    for ((i = 0; i < 300 && ${#pids[@]} > 0; i++)); do
        local left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        pids=("${left[@]}")
        ((${#pids[@]} == 0)) || sleep 0.1
    done
    echo "${pids[@]}"
}

stop_daemons() { # NAME... : TERM, wait <=10 s, KILL
    local name pid pids=() i
    for name in "$@"; do
        if pid=$(daemon_pid "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
        local left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        pids=("${left[@]}")
        ((${#pids[@]} == 0)) || sleep 0.1
    done
    for pid in "${pids[@]}"; do
        log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    # A killed OSD can sit in uninterruptible I/O for a while; its successor must not start
    # before it is gone (it would find bluestore's fsid lock held and exit).
    ((${#pids[@]} == 0)) || wait_gone "${pids[@]}" >/dev/null
    for name in "$@"; do rm -f -- "$RUN/$name.pid" "$RUN/$name.asok"; done
}

kill_daemon() { # NAME : SIGKILL, no goodbye to the mon; returns once the process is gone
    local name=$1 pid left
    pid=$(daemon_pid "$name") || { log "$name is not running"; return 0; }
    kill -KILL "$pid" 2>/dev/null || true
    left=$(wait_gone "$pid")
    [[ -z $left ]] || die "$name (pid $pid) still alive 30 s after SIGKILL"
    rm -f -- "$RUN/$name.pid" "$RUN/$name.asok"
}

# mon last: a terminating OSD tells the mon it is going down (osd_fast_shutdown_notify_mon) and
# waits up to 5 s for the mon's answer; the next start then also finds the OSDs marked down.
stop_all() {
    # shellcheck disable=SC2046
    stop_daemons "$MGR" $(osd_names)
    stop_daemons "$MON"
}

show_log() { # NAME...
    local name f
    for name in "$@"; do
        for f in "$LOGD/$name.out" "$LOGD/$name.log"; do
            [[ -s $f ]] || continue
            log "---- last lines of $f ----"
            grep -v '^[[:space:]]*$' -- "$f" | tail -n 25 >&2 || true
        done
    done
}

# ---------------------------------------------------------------------------------------------
# ceph CLI helpers (always bounded)

c_ceph() { timeout "${T:-30}" ceph -c "$CONF" "$@" 9>&-; }

remaining() { # seconds left until $DEADLINE (at least 1)
    local r=$((DEADLINE - SECONDS))
    ((r > 0)) && echo "$r" || echo 1
}

set_deadline() { # the start/restart budget: TIMEOUT, plus 20 s per OSD beyond the first
    DEADLINE=$((SECONDS + TIMEOUT + 20 * ($(osd_count) - 1)))
}

fail_not_ready() { # WHAT
    local n
    log "$1 within the timeout"
    for n in "$MON" $(osd_names); do running "$n" || { show_log "$n"; die "$n is not running"; }; done
    T=10 c_ceph -s >&2 2>&1 || true
    # shellcheck disable=SC2046
    show_log $(osd_names)
    die "cluster in $DIR not ready"
}

# Wait until every OSD is up, pool rbd is usable and (with a running mgr) all PGs report
# active+clean.  `rados ls` visits every PG of the pool, so it only returns once they are all
# active; it is the ground truth and needs no mgr.  The mgr's view (`ceph -s`) lags and may be
# stale right after an OSD restart, so it is only checked afterwards, for a clean `ceph -s`.
wait_ready() {
    local osd
    # First each OSD itself must have seen its boot accepted ("state": "active"): if the
    # previous instance died without telling the mon (kill -9, crash), clients still hold a map
    # pointing at the dead instance and only re-fetch it after objecter_timeout (10 s).
    for osd in $(osd_names); do
        until timeout 10 ceph --admin-daemon "$RUN/$osd.asok" status 2>/dev/null 9>&- |
            grep -q '"state": "active"'; do
            ((SECONDS < DEADLINE)) || fail_not_ready "$osd did not become active"
            running "$osd" || fail_not_ready "$osd died"
            sleep 0.2
        done
    done
    until timeout "$(remaining)" rados -c "$CONF" -p rbd ls >/dev/null 2>&1 9>&-; do
        ((SECONDS < DEADLINE)) || fail_not_ready "pool rbd did not become usable"
        sleep 0.5
    done
    running "$MGR" || return 0
    local out
    while :; do
        out=$(T=$(remaining) c_ceph pg stat 2>/dev/null) || out=
        all_clean "$out" && return 0
        ((SECONDS < DEADLINE)) || fail_not_ready "PGs not active+clean (last: ${out:-no answer})"
        sleep 0.5
    done
}

# `ceph pg stat` says every PG is active+clean: "9 pgs: 6 active+clean, 3 active+clean+snaptrim;
# ...".  Housekeeping on a clean PG (snapshot trimming, scrubbing) still counts as clean: under
# load (the OSD fault tests restart OSDs while clients work) there is always some.
all_clean() { # PG_STAT_OUTPUT
    local re='^([0-9]+) pgs: ([^;]*);' total clean=0 part n state flag ok parts flags
    [[ $1 =~ $re ]] || return 1
    total=${BASH_REMATCH[1]}
    IFS=',' read -r -a parts <<<"${BASH_REMATCH[2]}"
    for part in "${parts[@]}"; do
        read -r n state <<<"$part"
        IFS='+' read -r -a flags <<<"$state"
        ok=0
        [[ +$state+ == *+active+* && +$state+ == *+clean+* ]] && ok=1
        for flag in "${flags[@]}"; do
            case $flag in
                active | clean | snaptrim | snaptrim_wait | scrubbing | deep | scrub_scheduling) ;;
                *) ok=0 ;;
            esac
        done
        ((ok)) && clean=$((clean + n))
    done
    ((total > 0 && clean == total))
}

# ---------------------------------------------------------------------------------------------
# classes

refresh_stock_classes() { # DIR
    local dir=$1 f base
    mkdir -p -- "$dir"
    for f in "$STOCK_CLASS_DIR"/libcls_*.so; do
        [[ -e $f ]] || continue
        base=${f##*/}
        # never replace a real file (a class we installed under a stock name)
        [[ -L $dir/$base && $(readlink -- "$dir/$base") == "$f" ]] && continue
        if [[ ! -e $dir/$base || -L $dir/$base ]]; then ln -sfn -- "$f" "$dir/$base"; fi
    done
    for f in "$dir"/*; do # drop dangling symlinks (package removed a class)
        if [[ -L $f && ! -e $f ]]; then rm -f -- "$f"; fi
    done
}

refresh_all_stock_classes() {
    local osd
    for osd in $(osd_names); do refresh_stock_classes "$(class_dir "$osd")"; done
}

# copy-then-rename; returns 0 if the installed file changed, 1 if it was already identical
install_class_file() { # SRC DIR
    local src=$1 dir=$2 base dst tmp
    base=${src##*/}
    [[ -f $src ]] || die "class file $src does not exist"
    [[ $base == libcls_?*.so ]] || die "class file must be named libcls_<name>.so (got $base)"
    mkdir -p -- "$dir"
    dst=$dir/$base
    if [[ -f $dst && ! -L $dst ]] && cmp -s -- "$src" "$dst"; then return 1; fi
    tmp=$dir/.$base.tmp.$$
    cp -- "$src" "$tmp"
    chmod 0755 -- "$tmp"
    mv -f -- "$tmp" "$dst" # rename(2): new inode, the running OSD keeps its mapping of the old one
    log "installed $base into ${dir#"$DIR"/}"
    return 0
}

# Installs SRC for the OSDs named; prints the ones whose copy changed.  With one shared class
# dir (an older cluster) a change concerns every OSD.
install_class_for() { # SRC NAME...
    local src=$1 osd changed=()
    shift
    for osd in "$@"; do
        if install_class_file "$src" "$(class_dir "$osd")"; then changed+=("$osd"); fi
    done
    if ((${#changed[@]} > 0)) && [[ $(class_dir osd.0) == "$CLASSES" ]]; then
        osd_names
        return 0
    fi
    printf '%s\n' "${changed[@]}"
}

# ---------------------------------------------------------------------------------------------
# bootstrap

port_free() { # PORT
    ! ss -Htan "( sport = :$1 or dport = :$1 )" 2>/dev/null | grep -q .
}

pick_port() {
    local span=$((PORT_MAX - PORT_MIN + 1)) h i p
    h=$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)
    for ((i = 0; i < span; i++)); do
        p=$((PORT_MIN + (h + i) % span))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    die "no free port in $PORT_MIN..$PORT_MAX"
}

authtool() { ceph-authtool "$@" >/dev/null; }

write_conf() { # FSID PORT OSDS
    local fsid=$1 port=$2 osds=$3 sec size min_size
    size=$((osds < 3 ? osds : 3))
    min_size=$((osds >= 3 ? 2 : 1))
    cat >"$CONF.tmp" <<EOF
# generated by $PROG for a throwaway test cluster; see the header of scripts/cluster.sh
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/ceph.client.admin.keyring
crash dir = $DIR/crash
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon osd reporter subtree level = osd
mon osd min down reporters = 1
osd pool default size = $size
osd pool default min size = $min_size
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd class load list = *
osd class default list = *
mgr stats period = 1
paxos propose interval = 0.1
ms bind msgr1 = false
EOF
    for sec in mon osd mgr; do
        cat >>"$CONF.tmp" <<EOF

[$sec]
$sec data = $DIR/\$name
keyring = $DIR/\$name/keyring
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
EOF
        case $sec in
            mon) echo "mon cluster log file = $DIR/log/\$cluster.\$channel.log" >>"$CONF.tmp" ;;
            osd) cat >>"$CONF.tmp" <<EOF
osd class dir = $DIR/classes/\$name
osd objectstore = bluestore
bluestore block path = $DIR/\$name/block.img
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mkfs = false
osd memory target = 939524096
osd recovery sleep = 0
osd snap trim sleep = 0
EOF
                ;;
        esac
    done
    mv -f -- "$CONF.tmp" "$CONF"
}

wipe_dir() { # everything but the marker/lock file
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name "${MARKER##*/}" -exec rm -rf -- {} +
}

bootstrap() { # WANT_MGR CLASS OSDS
    local want_mgr=$1 class=$2 osds=$3 fsid port tmp osd
    if [[ -n $(find "$DIR" -mindepth 1 -maxdepth 1 ! -name "${MARKER##*/}" -print -quit) ]]; then
        log "$DIR holds an incomplete cluster; wiping it"
        stop_all
        wipe_dir
    fi
    echo "$osds" >"$OSD_COUNT_FILE"
    mkdir -p -- "$RUN" "$LOGD" "$DIR/crash" "$DIR/$MGR"
    tmp=$DIR/bootstrap.tmp
    mkdir -p -- "$tmp"

    port=$(pick_port)
    fsid=$(uuidgen)
    write_conf "$fsid" "$port" "$osds"
    refresh_all_stock_classes
    # shellcheck disable=SC2046
    if [[ -n $class ]]; then install_class_for "$class" $(osd_names) >/dev/null; fi

    # keys: generated here, imported into the mon's initial auth database by ceph-mon --mkfs
    authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    authtool --create-keyring "$DIR/$MGR/keyring" --gen-key -n "$MGR" \
        --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
    authtool --create-keyring "$tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *'
    local k
    for k in "$DIR/ceph.client.admin.keyring" "$DIR/$MGR/keyring"; do
        authtool "$tmp/mon.keyring" --import-keyring "$k"
    done
    declare -A uuid=()
    for osd in $(osd_names); do
        mkdir -p -- "$DIR/$osd"
        uuid[$osd]=$(uuidgen)
        authtool --create-keyring "$DIR/$osd/keyring" --gen-key -n "$osd" \
            --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
        authtool "$tmp/mon.keyring" --import-keyring "$DIR/$osd/keyring"
    done
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$tmp/monmap" >/dev/null

    # OSD mkfs (bluestore, a few seconds each) needs no mon: run them alongside the mon's
    # bootstrap and each other.
    declare -A mkfs_pid=()
    for osd in $(osd_names); do
        ceph-osd -c "$CONF" --no-mon-config -i "${osd#osd.}" --mkfs --osd-uuid "${uuid[$osd]}" \
            </dev/null >>"$LOGD/$osd.mkfs.out" 2>&1 9>&- &
        mkfs_pid[$osd]=$!
    done
    if ! ceph-mon -c "$CONF" --mkfs -i "${MON#mon.}" --monmap "$tmp/monmap" \
        --keyring "$tmp/mon.keyring" </dev/null >>"$LOGD/$MON.mkfs.out" 2>&1 9>&-; then
        for osd in "${!mkfs_pid[@]}"; do wait "${mkfs_pid[$osd]}" || true; done
        show_log "$MON.mkfs" "$MON"
        die "ceph-mon --mkfs failed"
    fi
    port_free "$port" || die "port $port was taken meanwhile; rerun start"
    set_deadline
    start_daemon "$MON"
    # The mgr takes longest to come up (python modules; ~15 s on 2 busy cores): start it first.
    [[ $want_mgr == 1 ]] && start_daemon "$MGR"
    for osd in $(osd_names); do
        T=$(remaining) c_ceph osd new "${uuid[$osd]}" "${osd#osd.}" >/dev/null
    done
    T=$(remaining) c_ceph osd pool create rbd "$PG_NUM" "$PG_NUM" replicated >/dev/null 2>&1
    for osd in $(osd_names); do
        if ! wait "${mkfs_pid[$osd]}"; then
            show_log "$osd.mkfs" "$osd"
            die "ceph-osd --mkfs of $osd failed"
        fi
    done
    # shellcheck disable=SC2046
    start_osds $(osd_names)
    # rbd pool init writes to the pool, so it returns once the PGs are active
    if ! timeout "$(remaining)" rbd -c "$CONF" pool init rbd 9>&-; then
        fail_not_ready "rbd pool init did not finish"
    fi
    wait_ready
    rm -rf -- "$tmp"
    touch -- "$BOOTSTRAPPED"
}

# ---------------------------------------------------------------------------------------------
# subcommands

cmd_start() {
    local want_mgr=1 class='' osds=''
    set_dir "${1:-}"
    shift
    while (($#)); do
        case $1 in
            --no-mgr) want_mgr=0 ;;
            --class) [[ -n ${2:-} ]] || usage; class=$(realpath -- "$2"); shift ;;
            --class=*) class=$(realpath -- "${1#--class=}") ;;
            --osds) [[ -n ${2:-} ]] || usage; osds=$2; shift ;;
            --osds=*) osds=${1#--osds=} ;;
            *) usage ;;
        esac
        shift
    done
    if [[ -n $osds ]]; then
        if ! [[ $osds =~ ^[0-9]+$ ]] || ((osds < 1 || osds > MAX_OSDS)); then
            die "--osds takes 1..$MAX_OSDS (got $osds)"
        fi
    fi
    local t
    for t in ceph-mon ceph-osd ceph-authtool monmaptool ceph rados rbd uuidgen ss flock timeout; do
        command -v "$t" >/dev/null || die "$t not found (packages: ceph-mon ceph-osd ceph-mgr ceph-common uuid-runtime iproute2)"
    done
    check_owned
    take_lock
    local t0=$SECONDS
    if [[ ! -e $BOOTSTRAPPED ]]; then
        bootstrap "$want_mgr" "$class" "${osds:-1}"
        log "new cluster up in $((SECONDS - t0))s: $(summary)"
        return 0
    fi
    if [[ -n $osds && $osds != "$(osd_count)" ]]; then
        die "$DIR has $(osd_count) OSD(s), not $osds; destroy it to start afresh with --osds $osds"
    fi

    local changed=() osd any=0 was_running=()
    for osd in $(osd_names); do running "$osd" && was_running+=("$osd"); done
    refresh_all_stock_classes
    # shellcheck disable=SC2046
    if [[ -n $class ]]; then mapfile -t changed < <(install_class_for "$class" $(osd_names)); fi
    set_deadline
    if ! running "$MON"; then
        local port
        port=$(sed -n 's/^mon host = v2:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$CONF")
        if [[ -n $port ]] && ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            die "mon port $port (recorded in $CONF and the monmap) is in use by another process; free it, or destroy $DIR and start afresh"
        fi
        start_daemon "$MON"
        any=1
    fi
    if [[ $want_mgr == 1 ]] && ! running "$MGR"; then start_daemon "$MGR"; any=1; fi
    local stopped=()
    for osd in $(osd_names); do running "$osd" || stopped+=("$osd"); done
    if ((${#stopped[@]} > 0)); then start_osds "${stopped[@]}"; any=1; fi
    # OSDs that were running with an older copy of the class: restarted one at a time.
    for osd in "${changed[@]}"; do
        [[ " ${was_running[*]} " == *" $osd "* ]] || continue
        restart_one "$osd"
        any=1
    done
    wait_ready
    if ((any)); then log "cluster up in $((SECONDS - t0))s: $(summary)"; fi
}

cmd_stop() {
    set_dir "${1:-}"
    [[ -d $DIR ]] || return 0
    check_owned
    take_lock
    stop_all
}

cmd_destroy() {
    set_dir "${1:-}"
    [[ -d $DIR ]] || return 0
    check_owned
    take_lock
    stop_all
    rm -rf -- "$DIR"
}

need_cluster() { # DIR: a bootstrapped cluster whose mon runs; takes the lock
    set_dir "${1:-}"
    [[ -e $BOOTSTRAPPED ]] || die "no cluster in $DIR"
    take_lock
    running "$MON" || die "mon of $DIR is not running; use start"
}

restart_one() { # NAME: stop, start, wait until the cluster is ready
    local t0=$SECONDS
    set_deadline
    stop_daemons "$1"
    start_daemon "$1"
    wait_ready
    log "$1 restarted in $((SECONDS - t0))s"
}

cmd_restart_osd() {
    need_cluster "${1:-}"
    local osd
    if [[ -n ${2:-} ]]; then
        restart_one "$(osd_name "$2")"
    else
        for osd in $(osd_names); do restart_one "$osd"; done
    fi
}

cmd_stop_osd() {
    need_cluster "${1:-}"
    local osd
    osd=$(osd_name "${2:-}")
    stop_daemons "$osd"
    log "$osd stopped"
}

cmd_kill_osd() {
    need_cluster "${1:-}"
    local osd
    osd=$(osd_name "${2:-}")
    kill_daemon "$osd"
    log "$osd killed (SIGKILL)"
}

cmd_start_osd() {
    need_cluster "${1:-}"
    shift
    local names=() id t0=$SECONDS
    (($# > 0)) || usage
    for id in "$@"; do names+=("$(osd_name "$id")"); done
    set_deadline
    start_osds "${names[@]}"
    wait_ready
    log "${names[*]} started, cluster ready in $((SECONDS - t0))s"
}

cmd_osds() {
    set_dir "${1:-}"
    [[ -e $CONF ]] || die "no cluster in $DIR"
    osd_names | sed 's/^osd\.//'
}

cmd_install_class() {
    set_dir "${1:-}"
    [[ -n ${2:-} ]] || usage
    local class only='' restart=1
    class=$(realpath -- "$2")
    shift 2
    while (($#)); do
        case $1 in
            --osd) [[ -n ${2:-} ]] || usage; only=$2; shift ;;
            --osd=*) only=${1#--osd=} ;;
            --no-restart) restart=0 ;;
            *) usage ;;
        esac
        shift
    done
    [[ -e $BOOTSTRAPPED ]] || die "no cluster in $DIR (start it first, or use start --class)"
    take_lock
    local targets changed=() osd
    if [[ -n $only ]]; then targets=$(osd_name "$only"); else targets=$(osd_names); fi
    refresh_all_stock_classes
    # shellcheck disable=SC2086
    mapfile -t changed < <(install_class_for "$class" $targets)
    if ((${#changed[@]} == 0)); then
        log "${class##*/} unchanged; nothing to do"
        return 0
    fi
    ((restart)) || return 0
    if ! running "$MON"; then # an OSD cannot start without its mon
        # shellcheck disable=SC2068
        stop_daemons ${changed[@]}
        log "mon of $DIR is down: stopped the OSDs; \`$PROG start $DIR\` brings them back"
        return 0
    fi
    for osd in "${changed[@]}"; do
        running "$osd" || continue
        restart_one "$osd"
    done
}

summary() {
    local n out=() pid
    for n in "$MON" $(osd_names) "$MGR"; do
        if pid=$(daemon_pid "$n"); then out+=("$n=$pid"); else out+=("$n=stopped"); fi
    done
    printf '%s %s, %s' "$(grep -m1 '^mon host' "$CONF" 2>/dev/null | sed 's/.*= *//')" "${out[*]}" "CEPH_CONF=$CONF"
}

cmd_status() {
    set_dir "${1:-}"
    if [[ ! -e $CONF ]]; then
        echo "no cluster in $DIR"
        return 1
    fi
    local n pid rc=0
    echo "dir:      $DIR$([[ -e $BOOTSTRAPPED ]] || echo ' (incomplete bootstrap)')"
    echo "mon host: $(grep -m1 '^mon host' "$CONF" | sed 's/.*= *//')"
    for n in "$MON" $(osd_names) "$MGR"; do
        if pid=$(daemon_pid "$n"); then echo "$n:    running (pid $pid)"; else echo "$n:    stopped"; fi
    done
    running "$MON" || rc=1
    for n in $(osd_names); do running "$n" || rc=1; done
    if running "$MON"; then T=10 c_ceph -s || rc=1; fi
    return $rc
}

cmd_env() {
    set_dir "${1:-}"
    [[ -e $CONF ]] || log "warning: $CONF does not exist (yet)"
    printf 'export CEPH_CONF=%q\n' "$CONF"
    printf 'export CEPH_CLUSTER_DIR=%q\n' "$DIR"
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" || exit $? ;;
        install-class) cmd_install_class "$@" ;;
        restart-osd) cmd_restart_osd "$@" ;;
        stop-osd) cmd_stop_osd "$@" ;;
        kill-osd) cmd_kill_osd "$@" ;;
        start-osd) cmd_start_osd "$@" ;;
        osds) cmd_osds "$@" ;;
        env) cmd_env "$@" ;;
        destroy) cmd_destroy "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
