#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests and for trying `--scheduler slurm`:
#   Tools/slurm-local.sh start [DIR]   write DIR/slurm.conf, start munged, slurmctld and slurmd
#   Tools/slurm-local.sh stop [DIR]    stop exactly the processes `start` started
#   Tools/slurm-local.sh status [DIR]  say whether it runs (sinfo)
# DIR (default $LETHE_SLURM_DIR or /tmp/lethe-slurm) holds the config, state, spool, logs and
# PID files; nothing under /etc changes and only /run/munge is created. Clients find the
# cluster through SLURM_CONF=DIR/slurm.conf (`start` prints the export line). One node,
# `localhost`, sized by `slurmd -C`; partition `ci`; a task exiting 75 is requeued
# (RequeueExit=75) after 10 s; per-task exit codes go to DIR/log/jobcomp.log.
# Needs Debian's slurm-wlm and munge (`make setup` installs them) and root (munged runs as
# user munge through setpriv).
set -euo pipefail
command="${1:-status}"
W="${2:-${LETHE_SLURM_DIR:-/tmp/lethe-slurm}}"
export SLURM_CONF="$W/slurm.conf"

say() { printf 'slurm-local: %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { say "$1 is missing: run make setup (it installs slurm-wlm and munge)"; exit 1; }; }

running() { [ -f "$W/pids" ] && while read -r _ pid; do kill -0 "$pid" 2>/dev/null || return 1; done < "$W/pids"; }

start() {
    need slurmctld; need slurmd; need munged; need sinfo
    # The daemons outlive this script: they must not hold any descriptor it inherited (a
    # caller waiting for a pipe or a status descriptor to close would wait for them).
    for fd in $(ls /proc/$$/fd); do
        if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    if running; then say "already running ($W)"; echo "export SLURM_CONF=$SLURM_CONF"; return; fi
    mkdir -p "$W"/{state,spool,log}
    rm -f "$W/pids"
    local node
    node=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost NodeAddr=127.0.0.1/')
    cat > "$SLURM_CONF" <<EOF
ClusterName=lethe
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$W/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
RequeueExit=75
MailProg=/bin/true
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pidfile
SlurmdPidFile=$W/slurmd.pidfile
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
$node State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # A munged that already answers (another cluster on this machine) is used, not started.
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        install -d -o munge -g munge -m 0755 /run/munge
        setsid setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
            < /dev/null > "$W/log/munged.log" 2>&1 &
        echo "munged $!" >> "$W/pids"
        for _ in $(seq 100); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    # In sessions of their own, detached from the caller's terminal and pipes.
    setsid /usr/sbin/slurmctld -D -i -f "$SLURM_CONF" < /dev/null > /dev/null 2>&1 &
    echo "slurmctld $!" >> "$W/pids"
    setsid /usr/sbin/slurmd -D -N localhost -f "$SLURM_CONF" < /dev/null > /dev/null 2>&1 &
    echo "slurmd $!" >> "$W/pids"
    for _ in $(seq 300); do
        [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && { say "running ($W)"; echo "export SLURM_CONF=$SLURM_CONF"; return; }
        sleep 0.1
    done
    say "the node did not become idle within 30 s; see $W/log/slurmctld.log and slurmd.log"
    stop
    exit 1
}

stop() {
    [ -f "$W/pids" ] || { say "not running ($W has no pids)"; return; }
    # slurmd, then slurmctld, then munged: the reverse of the start order.
    local pids
    pids=$(tac "$W/pids" | awk '{print $2}')
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$W/pids"
    say "stopped ($W)"
}

case "$command" in
    start) start ;;
    stop) stop ;;
    status) if running; then sinfo; else say "not running ($W)"; exit 1; fi ;;
    *) say "usage: $0 start|stop|status [DIR]"; exit 64 ;;
esac
