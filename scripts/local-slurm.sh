#!/usr/bin/env bash
# A real single-host Slurm cluster (Debian 12: Slurm 22.05, REST API v0.0.38 with JWT) for development and CI.
#
#   sudo scripts/local-slurm.sh start          # munged, slurmctld, N slurmd "fake nodes", slurmrestd
#   sudo scripts/local-slurm.sh status
#   sudo scripts/local-slurm.sh token [user]   # a fresh JWT (24 h) for a user, default ci
#   sudo scripts/local-slurm.sh stop-rest      # stop only slurmrestd (tests of an unreachable centre)
#   sudo scripts/local-slurm.sh stop           # everything, in reverse order, by PID file
#
# Settings (environment): SLURM_NODES (2), SLURM_CPUS (64 per node), SLURM_GPUS (8 per node),
# SLURM_MEMORY_MB (257000 per node). Idempotent: a rerun with the same settings restarts nothing;
# different settings rewrite the configuration and restart the Slurm daemons. Saved state (job ids) is kept.
# Ports: slurmctld 6817, slurmrestd 6820, slurmd 17001.. (one per node); everything on 127.0.0.1.
# REST: http://127.0.0.1:6820/slurm/v0.0.38/ with headers X-SLURM-USER-NAME: ci and
# X-SLURM-USER-TOKEN: $(cat /var/lib/slurm-local/ci.jwt).
set -euo pipefail

NODES=${SLURM_NODES:-2}
CPUS=${SLURM_CPUS:-64}
GPUS=${SLURM_GPUS:-8}
MEMORY=${SLURM_MEMORY_MB:-257000}
REST_ADDR=127.0.0.1:6820
STATE=/var/lib/slurm-local
CONF_DIR=/etc/slurm
SPOOL=/var/spool/slurmctld
KEY=$SPOOL/jwt_hs256.key
LOGS=/var/log/slurm
REST_PID=$STATE/slurmrestd.pid
PACKAGES=(slurmctld slurmd slurm-client slurmrestd slurm-wlm-basic-plugins slurm-wlm-jwt-plugin munge curl)

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"; }

alive() { # alive <pidfile>: the process recorded there runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "missing ${missing[*]} and this is not Debian; install Slurm 22.05 yourself"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

node_names() { local i; for i in $(seq 1 "$NODES"); do echo "node$i"; done; }

node_list() { [ "$NODES" = 1 ] && echo node1 || echo "node[1-$NODES]"; }

write_config() { # prints "changed" when slurm.conf or gres.conf differ from what these settings want
  local nodes ports gpu_files conf gres
  nodes=$(node_list)
  if [ "$NODES" = 1 ]; then ports=17001; else ports="[17001-$((17000 + NODES))]"; fi
  gpu_files="$STATE/fake-gpus/nvidia[0-$((GPUS - 1))]"
  [ "$GPUS" = 1 ] && gpu_files="$STATE/fake-gpus/nvidia0"
  conf=$(cat <<EOF
# Written by scripts/local-slurm.sh (SLURM_NODES=$NODES SLURM_CPUS=$CPUS SLURM_GPUS=$GPUS SLURM_MEMORY_MB=$MEMORY)
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=slurm
SlurmctldPort=6817
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$KEY
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
StateSaveLocation=$SPOOL
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
NodeName=$nodes NodeHostname=localhost NodeAddr=127.0.0.1 Port=$ports CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEMORY$([ "$GPUS" -gt 0 ] && echo " Gres=gpu:$GPUS") State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
  gres=""
  [ "$GPUS" -gt 0 ] && gres="NodeName=$nodes Name=gpu File=$gpu_files"
  local changed=""
  if [ "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" >"$CONF_DIR/slurm.conf"; changed=1
  fi
  if [ "$(cat "$CONF_DIR/gres.conf" 2>/dev/null)" != "$gres" ]; then
    printf '%s\n' "$gres" >"$CONF_DIR/gres.conf"; changed=1
  fi
  chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
  [ -n "$changed" ] && echo changed || true
}

prepare() {
  install_packages
  id slurm >/dev/null 2>&1 || die "user slurm missing (the slurm packages create it)"
  id slurmrestd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin slurmrestd
  id ci >/dev/null 2>&1 || useradd --create-home --shell /bin/bash ci
  mkdir -p "$STATE/fake-gpus" "$CONF_DIR" "$SPOOL" /var/spool/slurmd "$LOGS" /run/munge
  chown slurm:slurm "$SPOOL" "$LOGS"
  chmod 755 "$STATE"
  # GPUs need File= and a character device (gres/gpu without files is dropped): /dev/null links.
  local i
  for i in $(seq 0 $((GPUS - 1))); do ln -sfn /dev/null "$STATE/fake-gpus/nvidia$i"; done
  if [ ! -s "$KEY" ]; then
    head -c 32 /dev/urandom >"$KEY"
  fi
  chown slurm:slurm "$KEY"; chmod 600 "$KEY"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else head -c 1024 /dev/urandom >/etc/munge/munge.key; fi
  fi
  chown munge:munge /etc/munge/munge.key /run/munge; chmod 400 /etc/munge/munge.key
  mkdir -p /var/log/munge /var/lib/munge; chown munge:munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOGS/munged.log" 2>&1
  local _
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start (see $LOGS/munged.log)"
}

stop_pidfile() { # stop_pidfile <pidfile> <name>
  if alive "$1"; then
    local pid _; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    say "stopped $2"
  fi
  rm -f "$1"
}

stop_slurm_daemons() {
  stop_pidfile "$REST_PID" slurmrestd
  local n
  for n in /run/slurmd-node*.pid; do [ -e "$n" ] && stop_pidfile "$n" "slurmd $(basename "$n" .pid | cut -d- -f2)"; done
  stop_pidfile /run/slurmctld.pid slurmctld
}

token_for() { # prints a JWT for the user (24 h)
  local out
  out=$(scontrol token "username=$1" lifespan=86400) || die "scontrol token failed"
  echo "${out#SLURM_JWT=}"
}

rest_ping() { # rest_ping: slurmrestd answers /ping with UP for user ci
  curl -fsS -m 2 -H "X-SLURM-USER-NAME: ci" -H "X-SLURM-USER-TOKEN: $(cat "$STATE/ci.jwt")" \
    "http://$REST_ADDR/slurm/v0.0.38/ping" 2>/dev/null | grep -q '"UP"'
}

start_rest() {
  alive "$REST_PID" && return
  # slurmrestd refuses root and SlurmUser: it drops to its own user; SLURM_JWT=daemon enables rest_auth/jwt.
  SLURM_JWT=daemon setsid /usr/sbin/slurmrestd -u slurmrestd -g slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 \
    "$REST_ADDR" </dev/null >>"$LOGS/slurmrestd.log" 2>&1 &
  echo $! >"$REST_PID"
  local _
  for _ in $(seq 100); do rest_ping && { say "slurmrestd up on http://$REST_ADDR"; return; }; sleep 0.1; done
  die "slurmrestd did not answer /ping (see $LOGS/slurmrestd.log)"
}

wait_nodes_idle() {
  local _ states bad
  for _ in $(seq 150); do
    states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true)
    bad=$(echo "$states" | awk '$2 ~ /drain|inval|down/ {print $1}' | sort -u | paste -sd, -)
    if [ -n "$bad" ]; then
      scontrol update nodename="$bad" state=resume >/dev/null 2>&1 || true
    fi
    if [ -n "$states" ] && [ "$(echo "$states" | awk '$2 !~ /^(idle|mixed|allocated)$/' | wc -l)" = 0 ] \
       && [ "$(echo "$states" | wc -l)" = "$NODES" ]; then
      return
    fi
    sleep 0.2
  done
  die "nodes not idle: $states (see $LOGS/slurmctld.log)"
}

start() {
  need_root start
  # Daemons inherit the working directory: a deleted one (a removed checkout) makes slurmrestd fail on getcwd.
  cd /
  prepare
  start_munge
  if [ "$(write_config)" = changed ]; then
    stop_slurm_daemons
    rm -f /run/slurmd-node*.pid
  fi
  if ! alive /run/slurmctld.pid; then
    slurmctld </dev/null >>"$LOGS/slurmctld.start.log" 2>&1
    local _
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    say "slurmctld up"
  fi
  local n
  for n in $(node_names); do
    if ! alive "/run/slurmd-$n.pid"; then
      mkdir -p "/var/spool/slurmd/$n"
      slurmd -N "$n" </dev/null >>"$LOGS/slurmd.start.log" 2>&1
      say "slurmd $n up"
    fi
  done
  wait_nodes_idle
  # The CI user's token: renewed when missing or older than 12 hours.
  if [ ! -s "$STATE/ci.jwt" ] || [ -n "$(find "$STATE/ci.jwt" -mmin +720)" ]; then
    token_for ci >"$STATE/ci.jwt.new"; chmod 644 "$STATE/ci.jwt.new"; mv "$STATE/ci.jwt.new" "$STATE/ci.jwt"
  fi
  start_rest
  status
}

status() {
  local ok=1 n
  printf '%-12s %s\n' munged "$(munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && echo up || { ok=0; echo down; })"
  printf '%-12s %s\n' slurmctld "$(alive /run/slurmctld.pid && echo "up (pid $(cat /run/slurmctld.pid))" || { ok=0; echo down; })"
  for n in /run/slurmd-node*.pid; do
    [ -e "$n" ] || continue
    printf '%-12s %s\n' "$(basename "$n" .pid)" "$(alive "$n" && echo "up (pid $(cat "$n"))" || echo down)"
  done
  if alive "$REST_PID" && rest_ping; then
    printf '%-12s %s\n' slurmrestd "up on http://$REST_ADDR (pid $(cat "$REST_PID"))"
  else
    ok=0; printf '%-12s %s\n' slurmrestd down
  fi
  if alive /run/slurmctld.pid; then sinfo -N -o '%N %T %c %m %G' 2>/dev/null || true; fi
  [ -s "$STATE/ci.jwt" ] && echo "token for ci: $STATE/ci.jwt"
  [ "$ok" = 1 ]
}

stop() {
  need_root stop
  stop_slurm_daemons
  if [ -s /run/munge/munged.pid ]; then stop_pidfile /run/munge/munged.pid munged; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  stop-rest) need_root stop-rest; stop_pidfile "$REST_PID" slurmrestd ;;
  status) status ;;
  token) need_root token; token_for "${2:-ci}" ;;
  *) echo "usage: $0 start|stop|status|stop-rest|token [user]" >&2; exit 2 ;;
esac
