#!/usr/bin/env bash
# cluster.sh - a throwaway single-node Ceph cluster (1 mon + 1 osd [+ 1 mgr]) for demos and
# integration tests of the rbd_cg object class.  Ceph 16.2 Pacific from Debian packages, run as
# root, no systemd, loopback only.  The settings rest on facts measured on this kind of machine
# (kept outside the repo in /work/shared/ceph-facts.md; "facts" below).
#
# Usage:
#   cluster.sh start         DIR [--class PATH/libcls_X.so] [--no-mgr]
#   cluster.sh stop          DIR
#   cluster.sh status        DIR
#   cluster.sh install-class DIR PATH/libcls_X.so
#   cluster.sh restart-osd   DIR
#   cluster.sh env           DIR      # eval "$(cluster.sh env DIR)" -> CEPH_CONF for rados/rbd/librados
#   cluster.sh destroy       DIR      # stop + rm -rf DIR
#
# Semantics:
#   start   creates the cluster if DIR is missing/empty; if DIR holds a cluster that was fully
#           bootstrapped before, it restarts the stopped daemons ON THE EXISTING DATA (bluestore
#           survives restarts); a running cluster is left alone (no-op).  A half-bootstrapped DIR
#           (an earlier start that failed) is wiped and recreated.  With --class the .so is
#           installed first; if the OSD is already running and the file changed, the OSD restarts.
#           Returns once pool `rbd` is usable (all its PGs active) and, with a mgr, `ceph pg stat`
#           reports every PG active+clean.  Timeout: $CLUSTER_SH_TIMEOUT seconds (default 60),
#           then it fails printing the tail of the relevant daemon log (daemons are left running
#           for inspection; `stop`/`destroy` them, a later `start` wipes the half-made cluster).
#   stop    TERM to the PIDs in DIR/run/*.pid (only if that PID really is a daemon started with
#           DIR/ceph.conf), waits up to 10 s, then KILL.  Never kills by name; DIR stays.
#   install-class  copy-then-rename into DIR/classes (new inode: the running OSD maps the old
#           file); restarts the OSD if it is running and the content changed.
#   A DIR that is non-empty and was not created by this script is refused (never wiped).
#
# Layout of DIR (always made absolute):
#   ceph.conf                      the only config; clients need just CEPH_CONF=DIR/ceph.conf
#   ceph.client.admin.keyring      client.admin key, referenced by [global] keyring
#   mon.a/  osd.0/  mgr.x/         daemon data dirs, each with its own `keyring`
#   osd.0/block.img                bluestore device: 10 GiB sparse file
#   classes/                       osd class dir: symlinks to stock libcls_*.so + our copies
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
#   - mon allow pool size one / no-redundancy warning off / pool default size 1 / chooseleaf
#     type 0: a one-OSD cluster that still reaches HEALTH_OK.  Insecure global id reclaim off:
#     otherwise a permanent health warning.  pg autoscale off: no PG splitting behind our back.
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
#   - `start` waits for the OSD's own admin socket to report "active" before probing with a
#     client: after an OSD died without telling the mon (kill -9, crash) a client would otherwise
#     keep the stale map and stall ~10 s (objecter_timeout).
#   - mon data avail warn/crit lowered: the mon refuses to run on a disk with <5% free.
#   - mgr stats period = 1: `ceph -s` / `ceph pg stat` catch up within ~1 s instead of 5 s.
#   - ceph-osd --mkfs does not write the OSD keyring: we generate all keys with ceph-authtool and
#     import them into the mon keyring before `ceph-mon --mkfs`, so no `ceph auth` calls needed.
set -Eeuo pipefail

PROG=cluster.sh
STOCK_CLASS_DIR=/usr/lib/x86_64-linux-gnu/rados-classes
TIMEOUT=${CLUSTER_SH_TIMEOUT:-60}
PORT_MIN=16789
PORT_MAX=19999
MON=mon.a
OSD=osd.0
MGR=mgr.x
PG_NUM=8

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

daemon_pid() { # NAME (mon.a|osd.0|mgr.x) -> prints pid if that daemon of DIR is running
    local name=$1 pidf=$RUN/$1.pid pid cmd
    [[ -s $pidf ]] || return 1
    pid=$(tr -dc '0-9' <"$pidf")
    [[ -n $pid ]] && alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"ceph-${name%%.*} "* && $cmd == *" $CONF "* ]] || return 1
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
    for ((i = 0; i < 300 && ${#pids[@]} > 0; i++)); do
        local left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        pids=("${left[@]}")
        ((${#pids[@]} == 0)) || sleep 0.1
    done
    for name in "$@"; do rm -f -- "$RUN/$name.pid" "$RUN/$name.asok"; done
}

# mon last: a terminating OSD tells the mon it is going down (osd_fast_shutdown_notify_mon) and
# waits up to 5 s for the mon's answer; the next start then also finds osd.0 marked down.
stop_all() {
    stop_daemons "$MGR" "$OSD"
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

fail_not_ready() { # WHAT
    local n
    log "$1 within ${TIMEOUT}s"
    for n in "$MON" "$OSD"; do running "$n" || { show_log "$n"; die "$n is not running"; }; done
    T=10 c_ceph -s >&2 2>&1 || true
    show_log "$OSD"
    die "cluster in $DIR not ready"
}

# Wait until pool rbd is usable and (with a running mgr) all PGs report active+clean.
# `rados ls` visits every PG of the pool, so it only returns once they are all active; it is the
# ground truth and needs no mgr.  The mgr's view (`ceph -s`) lags and may be stale right after an
# OSD restart, so it is only checked afterwards, for a clean `ceph -s`.
wait_ready() {
    # First the OSD itself must have seen its boot accepted ("state": "active"): if the previous
    # OSD died without telling the mon (kill -9, crash), clients still hold a map pointing at the
    # dead instance and only re-fetch it after objecter_timeout (10 s).
    until timeout 10 ceph --admin-daemon "$RUN/$OSD.asok" status 2>/dev/null 9>&- |
        grep -q '"state": "active"'; do
        ((SECONDS < DEADLINE)) || fail_not_ready "$OSD did not become active"
        running "$OSD" || fail_not_ready "$OSD died"
        sleep 0.2
    done
    until timeout "$(remaining)" rados -c "$CONF" -p rbd ls >/dev/null 2>&1 9>&-; do
        ((SECONDS < DEADLINE)) || fail_not_ready "pool rbd did not become usable"
        sleep 0.5
    done
    running "$MGR" || return 0
    local out re='^([0-9]+) pgs: ([0-9]+) active\+clean;'
    while :; do
        out=$(T=$(remaining) c_ceph pg stat 2>/dev/null) || out=
        if [[ $out =~ $re ]] && ((BASH_REMATCH[1] > 0 && BASH_REMATCH[1] == BASH_REMATCH[2])); then
            return 0
        fi
        ((SECONDS < DEADLINE)) || fail_not_ready "PGs not active+clean (last: ${out:-no answer})"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# classes

refresh_stock_classes() {
    mkdir -p -- "$CLASSES"
    local f base
    for f in "$STOCK_CLASS_DIR"/libcls_*.so; do
        [[ -e $f ]] || continue
        base=${f##*/}
        # never replace a real file (a class we installed under a stock name)
        [[ -L $CLASSES/$base && $(readlink -- "$CLASSES/$base") == "$f" ]] && continue
        if [[ ! -e $CLASSES/$base || -L $CLASSES/$base ]]; then ln -sfn -- "$f" "$CLASSES/$base"; fi
    done
    for f in "$CLASSES"/*; do # drop dangling symlinks (package removed a class)
        if [[ -L $f && ! -e $f ]]; then rm -f -- "$f"; fi
    done
}

# copy-then-rename; returns 0 if the installed file changed, 1 if it was already identical
install_class_file() { # SRC
    local src=$1 base dst tmp
    base=${src##*/}
    [[ -f $src ]] || die "class file $src does not exist"
    [[ $base == libcls_?*.so ]] || die "class file must be named libcls_<name>.so (got $base)"
    mkdir -p -- "$CLASSES"
    dst=$CLASSES/$base
    if [[ -f $dst && ! -L $dst ]] && cmp -s -- "$src" "$dst"; then return 1; fi
    tmp=$CLASSES/.$base.tmp.$$
    cp -- "$src" "$tmp"
    chmod 0755 -- "$tmp"
    mv -f -- "$tmp" "$dst" # rename(2): new inode, the running OSD keeps its mapping of the old one
    log "installed $base into $CLASSES"
    return 0
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

write_conf() { # FSID PORT
    local fsid=$1 port=$2 sec
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
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd class dir = $DIR/classes
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
osd objectstore = bluestore
bluestore block path = $DIR/\$name/block.img
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mkfs = false
osd memory target = 939524096
EOF
                ;;
        esac
    done
    mv -f -- "$CONF.tmp" "$CONF"
}

wipe_dir() { # everything but the marker/lock file
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name "${MARKER##*/}" -exec rm -rf -- {} +
}

bootstrap() { # WANT_MGR CLASS
    local want_mgr=$1 class=$2 fsid osd_uuid port tmp
    if [[ -n $(find "$DIR" -mindepth 1 -maxdepth 1 ! -name "${MARKER##*/}" -print -quit) ]]; then
        log "$DIR holds an incomplete cluster; wiping it"
        stop_all
        wipe_dir
    fi
    mkdir -p -- "$RUN" "$LOGD" "$DIR/crash" "$DIR/$OSD" "$DIR/$MGR"
    tmp=$DIR/bootstrap.tmp
    mkdir -p -- "$tmp"
    refresh_stock_classes
    if [[ -n $class ]]; then install_class_file "$class" || true; fi

    port=$(pick_port)
    fsid=$(uuidgen)
    osd_uuid=$(uuidgen)
    write_conf "$fsid" "$port"

    # keys: generated here, imported into the mon's initial auth database by ceph-mon --mkfs
    authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    authtool --create-keyring "$DIR/$OSD/keyring" --gen-key -n "$OSD" \
        --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
    authtool --create-keyring "$DIR/$MGR/keyring" --gen-key -n "$MGR" \
        --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
    authtool --create-keyring "$tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *'
    local k
    for k in "$DIR/ceph.client.admin.keyring" "$DIR/$OSD/keyring" "$DIR/$MGR/keyring"; do
        authtool "$tmp/mon.keyring" --import-keyring "$k"
    done
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$tmp/monmap" >/dev/null

    # OSD mkfs (bluestore, a few seconds) needs no mon: run it alongside the mon's bootstrap.
    ceph-osd -c "$CONF" --no-mon-config -i "${OSD#osd.}" --mkfs --osd-uuid "$osd_uuid" \
        </dev/null >>"$LOGD/$OSD.mkfs.out" 2>&1 9>&- &
    local mkfs_pid=$!
    if ! ceph-mon -c "$CONF" --mkfs -i "${MON#mon.}" --monmap "$tmp/monmap" \
        --keyring "$tmp/mon.keyring" </dev/null >>"$LOGD/$MON.mkfs.out" 2>&1 9>&-; then
        wait "$mkfs_pid" || true
        show_log "$MON.mkfs" "$MON"
        die "ceph-mon --mkfs failed"
    fi
    port_free "$port" || die "port $port was taken meanwhile; rerun start"
    DEADLINE=$((SECONDS + TIMEOUT))
    start_daemon "$MON"
    T=$(remaining) c_ceph osd new "$osd_uuid" "${OSD#osd.}" >/dev/null
    T=$(remaining) c_ceph osd pool create rbd "$PG_NUM" "$PG_NUM" replicated --size 1 >/dev/null 2>&1
    if ! wait "$mkfs_pid"; then
        show_log "$OSD.mkfs" "$OSD"
        die "ceph-osd --mkfs failed"
    fi
    start_daemon "$OSD"
    [[ $want_mgr == 1 ]] && start_daemon "$MGR"
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
    local want_mgr=1 class=
    set_dir "${1:-}"
    shift
    while (($#)); do
        case $1 in
            --no-mgr) want_mgr=0 ;;
            --class) [[ -n ${2:-} ]] || usage; class=$(realpath -- "$2"); shift ;;
            --class=*) class=$(realpath -- "${1#--class=}") ;;
            *) usage ;;
        esac
        shift
    done
    local t
    for t in ceph-mon ceph-osd ceph-authtool monmaptool ceph rados rbd uuidgen ss flock timeout; do
        command -v "$t" >/dev/null || die "$t not found (packages: ceph-mon ceph-osd ceph-mgr ceph-common uuid-runtime iproute2)"
    done
    check_owned
    take_lock
    local t0=$SECONDS
    if [[ ! -e $BOOTSTRAPPED ]]; then
        bootstrap "$want_mgr" "$class"
        log "new cluster up in $((SECONDS - t0))s: $(summary)"
        return 0
    fi

    local changed=0 osd_was_running=0 any=0
    refresh_stock_classes
    if [[ -n $class ]] && install_class_file "$class"; then changed=1; fi
    running "$OSD" && osd_was_running=1
    DEADLINE=$((SECONDS + TIMEOUT))
    if ! running "$MON"; then
        local port
        port=$(sed -n 's/^mon host = v2:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$CONF")
        if [[ -n $port ]] && ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            die "mon port $port (recorded in $CONF and the monmap) is in use by another process; free it, or destroy $DIR and start afresh"
        fi
        start_daemon "$MON"
        any=1
    fi
    if ((osd_was_running && changed)); then
        stop_daemons "$OSD"
        any=1
    fi
    running "$OSD" || { start_daemon "$OSD"; any=1; }
    if [[ $want_mgr == 1 ]] && ! running "$MGR"; then start_daemon "$MGR"; any=1; fi
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

cmd_restart_osd() {
    set_dir "${1:-}"
    [[ -e $BOOTSTRAPPED ]] || die "no cluster in $DIR"
    take_lock
    running "$MON" || die "mon of $DIR is not running; use start"
    local t0=$SECONDS
    DEADLINE=$((SECONDS + TIMEOUT))
    stop_daemons "$OSD"
    start_daemon "$OSD"
    wait_ready
    log "osd restarted in $((SECONDS - t0))s"
}

cmd_install_class() {
    set_dir "${1:-}"
    [[ -n ${2:-} ]] || usage
    local class
    class=$(realpath -- "$2")
    [[ -e $BOOTSTRAPPED ]] || die "no cluster in $DIR (start it first, or use start --class)"
    take_lock
    refresh_stock_classes
    if ! install_class_file "$class"; then
        log "${class##*/} unchanged; nothing to do"
        return 0
    fi
    running "$OSD" || return 0
    if ! running "$MON"; then # an OSD cannot start without its mon
        stop_daemons "$OSD"
        log "mon of $DIR is down: stopped the OSD; \`$PROG start $DIR\` brings both back"
        return 0
    fi
    local t0=$SECONDS
    DEADLINE=$((SECONDS + TIMEOUT))
    stop_daemons "$OSD"
    start_daemon "$OSD"
    wait_ready
    log "osd restarted in $((SECONDS - t0))s to pick up ${class##*/}"
}

summary() {
    local n out=() pid
    for n in "$MON" "$OSD" "$MGR"; do
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
    for n in "$MON" "$OSD" "$MGR"; do
        if pid=$(daemon_pid "$n"); then echo "$n:    running (pid $pid)"; else echo "$n:    stopped"; fi
    done
    running "$MON" && running "$OSD" || rc=1
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
        env) cmd_env "$@" ;;
        destroy) cmd_destroy "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
