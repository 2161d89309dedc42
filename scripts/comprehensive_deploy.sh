#!/usr/bin/env bash
# comprehensive_deploy.sh: deploy a Tria release and keep it only if the gate passes.
#
# The seed's deployment flow: pre-flight (Docker, system resources, the env file) -> bring up the
# release (Docker Compose, or local processes) -> the gate, stage by stage -> "Ready to accept
# traffic", or roll back to the previous release and exit non-zero. Run with --help for options.
# Every line goes to the terminal and to logs/deployment/deploy_<timestamp>.log, redacted.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO_ROOT/scripts/deploy"
COMPOSE_FILE="$REPO_ROOT/deploy/docker-compose.yml"

readonly EXIT_READY=0 EXIT_ROLLED_BACK=1 EXIT_PREFLIGHT=2 EXIT_NOTHING_SERVING=3 EXIT_USAGE=4
readonly EXIT_INTERRUPTED=130
readonly TARGET_NAME=release
readonly READINESS_PATH=/api/v1/health/readiness
# What the local stack provides in place of the compose services the env file names.
readonly STACK_KEYS=(DATABASE_URL REDIS_URL OPENAI_BASE_URL OPENAI_API_KEY OPENAI_MODEL
  OPENAI_EMBEDDING_MODEL CHROMA_URL)

PYTHON=${TRIA_DEPLOY_PYTHON:-python}
TRIA_DEPLOY_CLI=${TRIA_DEPLOY_CLI:-tria-deploy}
ACTION=deploy
MODE=${TRIA_DEPLOY_MODE:-auto}
ENV_FILE=${TRIA_DEPLOY_ENV_FILE:-$REPO_ROOT/.env.docker}
RELEASE=${TRIA_DEPLOY_RELEASE:-}
LOG_DIR=${TRIA_DEPLOY_LOG_DIR:-$REPO_ROOT/logs/deployment}
STATE_DIR=${TRIA_DEPLOY_STATE_DIR:-}
REPORT_DIR=${TRIA_DEPLOY_REPORT_DIR:-}
MIN_DISK_MB=${TRIA_DEPLOY_MIN_DISK_MB:-1024}
MIN_MEMORY_MB=${TRIA_DEPLOY_MIN_MEMORY_MB:-512}
MIN_CPUS=${TRIA_DEPLOY_MIN_CPUS:-1}
START_TIMEOUT=${TRIA_DEPLOY_START_TIMEOUT:-120}
STOP_TIMEOUT=${TRIA_DEPLOY_STOP_TIMEOUT:-30}


usage() {
  cat <<EOF
Usage: scripts/comprehensive_deploy.sh [OPTIONS]
       scripts/comprehensive_deploy.sh --down [--state-dir DIR] [--env-file FILE]

Deploy a Tria release, run the gate (tria-deploy verify) against it stage by stage, and keep it
only if the gate passes; otherwise roll back to the previous release.

  1. Pre-flight: the Docker CLI and engine, free disk / memory / CPUs against the minimums, the
     env file, validated by the service itself (python -m tria_service --check-config), and its
     compose secrets (POSTGRES_PASSWORD, REDIS_PASSWORD, the passwords in DATABASE_URL and
     REDIS_URL), judged by the service's placeholder rule.
  2. Bring up the release. Compose (deploy/docker-compose.yml, image tria-deploy:<release>): the
     service container is replaced in place on its fixed port, so the new release takes
     traffic BEFORE the gate has judged it; a failed gate then restores the previous image.
     Local mode: a \`python -m tria_service\` process on a free 127.0.0.1 port, which nothing
     routes to until the gate passed, using the dependencies of a \`tria-deploy up\` stack left
     running in the background (reused when one is running). In local mode the stack's
     endpoints replace the env file's compose host names; a variable set in your shell wins
     over both, as with compose.
  3. The gate against the new release, as an external target (with the env file, whose lines
     it checks) whose secrets are \`\${VAR}\` references to this script's environment; each
     stage's status is logged in order.
  4. PASS or WARN: "Ready to accept traffic". In local mode the previous release is then stopped
     with SIGTERM (it drains) and the new one recorded as current.
  5. Anything else: roll back. Compose: \`up --no-build service\` with the previous image tag;
     local: the new release is stopped and the previous one keeps serving, its readiness
     checked. A previous release that has died is not restarted (that would run it with this
     run's environment, untested by the gate): the script says so and exits 3.

Options (each also read from the environment variable shown):
  --mode auto|compose|local   auto (default): compose when a Docker engine answers, local
                              otherwise. compose without Docker fails pre-flight.
                              [TRIA_DEPLOY_MODE]
  --env-file FILE             the service's env file (default: .env.docker at the repository
                              root) [TRIA_DEPLOY_ENV_FILE]
  --release ID                the release id: image tag and TRIA_RELEASE_ID (default:
                              <git short sha>-<UTC timestamp>) [TRIA_DEPLOY_RELEASE]
  --log-dir DIR               deploy_<timestamp>.log goes here (default: logs/deployment)
                              [TRIA_DEPLOY_LOG_DIR]
  --state-dir DIR             current release, generated tria.toml, release and stack logs
                              (default: <log dir>/state) [TRIA_DEPLOY_STATE_DIR]
  --report-dir DIR            the gate's reports (default: <log dir>/reports/<release>)
                              [TRIA_DEPLOY_REPORT_DIR]
  --min-disk-mb N             free disk needed under the repository (default 1024)
                              [TRIA_DEPLOY_MIN_DISK_MB]
  --min-memory-mb N           available memory needed (default 512) [TRIA_DEPLOY_MIN_MEMORY_MB]
  --min-cpus N                CPUs needed (default 1) [TRIA_DEPLOY_MIN_CPUS]
  --start-timeout SECONDS     how long a release may take to answer /health (default 120)
                              [TRIA_DEPLOY_START_TIMEOUT]
  --stop-timeout SECONDS      how long a stopped release may take to drain before it is killed
                              (default 30) [TRIA_DEPLOY_STOP_TIMEOUT]
  --down                      stop what runs under this state dir: a release an interrupted run
                              left, the current release, and the stack only if a run with this
                              state dir started it (local: tria-deploy down; compose: docker
                              compose down). While another run holds the state dir it stops
                              nothing and exits 2.
  -h, --help                  show this help

Also: TRIA_DEPLOY_PYTHON (default python) and TRIA_DEPLOY_CLI (default tria-deploy) name the
interpreter and the CLI; TRIA_STATE_DIR is tria-deploy's own state dir (where it records the
local stack). Everything printed goes to stdout and, redacted, to the log.

Exit codes:
  0  the release passed the gate and is ready to accept traffic (--down: stopped)
  1  the release failed (to start, or the gate) and the previous release serves again
  2  pre-flight failed: nothing was started or changed (--down: another run holds the state dir)
  3  the release failed and no release serves: there was none before, or the rollback failed
  4  usage error (an unknown option or a bad value)
  130 interrupted (Ctrl-C, SIGTERM or SIGHUP). Local mode: the new release is stopped and the
      previous one serves on, untouched. Compose mode: the service is left as the interruption
      found it (possibly the new image): deploy again, or --down
EOF
}

die_usage() {
  printf 'comprehensive_deploy.sh: %s (see --help)\n' "$1" >&2
  exit "$EXIT_USAGE"
}

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die_usage "$1 needs a value"
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    local opt=$1 value=""
    if [[ $opt == --*=* ]]; then
      value=${opt#*=}
      opt=${opt%%=*}
      set -- "$opt" "$value" "${@:2}"
    fi
    case $opt in
      -h | --help) usage; exit "$EXIT_READY" ;;
      --down) ACTION=down; shift; continue ;;
      --mode | --env-file | --release | --log-dir | --state-dir | --report-dir | --min-disk-mb | \
        --min-memory-mb | --min-cpus | --start-timeout | --stop-timeout)
        need_value "$@"
        value=$2
        shift 2
        ;;
      *) die_usage "unknown option: $opt" ;;
    esac
    case $opt in
      --mode) MODE=$value ;;
      --env-file) ENV_FILE=$value ;;
      --release) RELEASE=$value ;;
      --log-dir) LOG_DIR=$value ;;
      --state-dir) STATE_DIR=$value ;;
      --report-dir) REPORT_DIR=$value ;;
      --min-disk-mb) MIN_DISK_MB=$value ;;
      --min-memory-mb) MIN_MEMORY_MB=$value ;;
      --min-cpus) MIN_CPUS=$value ;;
      --start-timeout) START_TIMEOUT=$value ;;
      --stop-timeout) STOP_TIMEOUT=$value ;;
    esac
  done
  case $MODE in auto | compose | local) ;; *) die_usage "--mode must be auto, compose or local" ;; esac
  local name
  for name in MIN_DISK_MB MIN_MEMORY_MB MIN_CPUS START_TIMEOUT STOP_TIMEOUT; do
    [[ ${!name} =~ ^[0-9]+$ ]] || die_usage "${name} must be a whole number"
  done
  [[ $MIN_CPUS -ge 1 ]] || die_usage "--min-cpus must be at least 1"
  if [[ -z $RELEASE ]]; then
    RELEASE="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo local)-$(date -u +%Y%m%d%H%M%S)"
  fi
  # A Docker tag: it names the image tria-deploy:<release>.
  [[ $RELEASE =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
    die_usage "--release must be letters, digits, '_', '.' or '-' (a Docker tag)"
  ENV_FILE=$(absolute "$ENV_FILE")
  LOG_DIR=$(absolute "$LOG_DIR")
  STATE_DIR=$(absolute "${STATE_DIR:-$LOG_DIR/state}")
  REPORT_DIR=$(absolute "${REPORT_DIR:-$LOG_DIR/reports/$RELEASE}")
}

absolute() {
  if [[ $1 == /* ]]; then printf '%s\n' "$1"; else printf '%s/%s\n' "$PWD" "$1"; fi
}

log() {
  printf '[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

section() {
  log "== $* =="
}


# Everything from here on goes through the redacting tee; the env files' secrets are masked,
# including the local stack's (its env file is read again when it appears or changes).
start_logging() {
  mkdir -p "$LOG_DIR" "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  LOG_FILE="$LOG_DIR/deploy_$(date -u +%Y%m%dT%H%M%SZ).log"
  [[ ! -e $LOG_FILE ]] || LOG_FILE="$LOG_DIR/deploy_$(date -u +%Y%m%dT%H%M%SZ)_$$.log"
  STACK_ENV="$STATE_DIR/stack.env"
  # The tee shares the terminal's process group, so a Ctrl-C reaches it too: it ignores the
  # signal (SIG_IGN survives exec, and it ignores them itself) and ends at end of input, so the
  # cleanup after an interruption is still logged.
  exec > >(
    trap '' INT TERM HUP
    exec "$PYTHON" "$HELPERS/redact_stream.py" --log "$LOG_FILE" --watch "$ENV_FILE" \
      --watch "$STACK_ENV"
  ) 2>&1
  TEE_PID=$!
  # Should the tee die anyway, a write fails (EPIPE) rather than killing the script mid-cleanup.
  trap '' PIPE
  trap 'finish' EXIT
  trap 'interrupted' INT TERM HUP
  log "log: $LOG_FILE"
}

# shellcheck disable=SC2329 # run by the EXIT trap
finish() {
  local rc=$?
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
  exit "$rc"
}

# shellcheck disable=SC2329 # run by the INT/TERM/HUP trap
interrupted() {
  trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short
  log "interrupted: stopping what this run started"
  stop_pending
  log "interrupted: exit $EXIT_INTERRUPTED"
  exit "$EXIT_INTERRUPTED"
}

# ---------------------------------------------------------------------------- state

# A state file is KEY=VALUE lines (mode, release, pid, port, url...); never sourced, only read.
state_get() {
  local file=$1 wanted=$2 key value
  [[ -f $file ]] || return 0
  while IFS='=' read -r key value; do
    if [[ $key == "$wanted" ]]; then
      printf '%s\n' "$value"
      return 0
    fi
  done <"$file"
}

# Its status is explicit: callers under `if !` or `||` run with set -e off.
state_write() {
  local file=$1
  shift
  printf '%s\n' "$@" >"$file.tmp" && mv "$file.tmp" "$file"
}

# One run at a time per state dir, a deployment or --down (where flock(1) exists); the lock goes
# with the process.
lock_state() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$STATE_DIR/lock"
  if ! flock -n 9; then
    log "FAILED: another deployment is running with the state dir $STATE_DIR — let it finish" \
      "(or interrupt it), then run again"
    exit "$EXIT_PREFLIGHT"
  fi
}

# ---------------------------------------------------------------------------- processes

alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* ]]
}

# (grep's output to /dev/null, not -q: an early exit would fail the pipeline with 141; -ww, or ps
# cuts the command line to $COLUMNS and a long interpreter path hides the name.)
is_release_process() {
  alive "$1" && ps -ww -o args= -p "$1" 2>/dev/null | grep tria_service >/dev/null
}

# SIGTERM, so the release drains; SIGKILL only after --stop-timeout.
stop_release() {
  local pid=$1 name=$2 waited=0
  if ! is_release_process "$pid"; then
    alive "$pid" || wait "$pid" 2>/dev/null || true # reap it if it was our child
    return 0
  fi
  log "stopping release $name (pid $pid) with SIGTERM"
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid" && ((waited < STOP_TIMEOUT * 2)); do
    sleep 0.5
    waited=$((waited + 1))
  done
  if alive "$pid"; then
    log "release $name did not stop within ${STOP_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  log "release $name stopped"
}

# The release recorded as pending: this run's new one, or one an interrupted run left behind.
stop_pending() {
  local pid
  pid=$(state_get "$STATE_DIR/pending" pid)
  if [[ -n $pid ]]; then
    stop_release "$pid" "$(state_get "$STATE_DIR/pending" release)"
  fi
  rm -f "$STATE_DIR/pending"
}

# Whether URL answers 200 (with a release id: and the body says it is that release).
answers() {
  "$PYTHON" "$HELPERS/probe.py" "$@"
}

# A free 127.0.0.1 port below the ephemeral range (tria-deploy's own choice), so no client
# socket takes it before the release binds it.
free_port() {
  "$PYTHON" -c 'from pytest_tria_deploy.provision.managed import free_port; print(free_port())'
}

# Run in the background (`detach CMD... &`): its own session, deaf to the terminal's hangup, and
# exec'd, so $! is the command's own pid (setsid forks only for a process group leader, which a
# background job of a script is not). It must not hold the state lock (fd 9) after we exit.
detach() {
  exec 9>&-
  if command -v setsid >/dev/null 2>&1; then
    exec setsid nohup "$@"
  fi
  exec nohup "$@"
}

# ---------------------------------------------------------------------------- pre-flight

# A command bounded in time where timeout(1) exists: a black-holed DOCKER_HOST must not hang.
bounded() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 20 "$@"
  else
    "$@"
  fi
}

docker_problem() {
  local out
  if ! command -v docker >/dev/null 2>&1; then
    echo "the docker CLI is not installed"
    return 0
  fi
  if ! out=$(bounded docker info --format '{{.ServerVersion}}' 2>&1); then
    echo "the Docker engine does not answer: $(printf '%s\n' "$out" | grep -v '^$' | tail -n 1)"
    return 0
  fi
  if ! bounded docker compose version >/dev/null 2>&1; then
    echo "the docker compose plugin is not installed"
  fi
}

preflight() {
  section "Pre-flight validation"
  local problem
  problem=$(docker_problem)
  case $MODE in
    compose)
      if [[ -n $problem ]]; then
        log "FAILED: --mode compose needs Docker: $problem — start Docker, or use --mode local"
        exit "$EXIT_PREFLIGHT"
      fi
      log "Docker: available"
      ;;
    auto)
      if [[ -n $problem ]]; then
        log "Docker: not available ($problem): using local mode"
        MODE=local
      else
        log "Docker: available: using compose mode"
        MODE=compose
      fi
      ;;
    local) log "Docker: not needed (--mode local)" ;;
  esac
  if [[ $MODE == local ]] && ! command -v "$TRIA_DEPLOY_CLI" >/dev/null 2>&1; then
    log "FAILED: local mode needs the $TRIA_DEPLOY_CLI command — pip install -e . in this repository"
    exit "$EXIT_PREFLIGHT"
  fi
  log "system resources:"
  if ! "$PYTHON" "$HELPERS/resources.py" --path "$REPO_ROOT" --min-disk-mb "$MIN_DISK_MB" \
    --min-memory-mb "$MIN_MEMORY_MB" --min-cpus "$MIN_CPUS"; then
    log "FAILED: this host is below the minimums above"
    exit "$EXIT_PREFLIGHT"
  fi
  log "env file: $ENV_FILE"
  if [[ ! -f $ENV_FILE ]]; then
    log "FAILED: $ENV_FILE does not exist — copy .env.docker.example to it and fill in the secrets"
    exit "$EXIT_PREFLIGHT"
  fi
  local refused=""
  if ! TRIA_ENV_FILE="$ENV_FILE" "$PYTHON" -m tria_service --check-config; then
    log "FAILED: the service refuses this configuration (above) — fix $ENV_FILE"
    refused=1
  fi
  if ! "$PYTHON" "$HELPERS/compose_secrets.py" "$ENV_FILE"; then
    log "FAILED: the compose secrets above are placeholders — fix $ENV_FILE"
    refused=1
  fi
  [[ -z $refused ]] || exit "$EXIT_PREFLIGHT"
  CURRENT_RELEASE=$(state_get "$STATE_DIR/current" release)
  if [[ $CURRENT_RELEASE == "$RELEASE" ]]; then
    log "FAILED: release $RELEASE is already the current release — give a new --release"
    exit "$EXIT_PREFLIGHT"
  fi
  log "pre-flight passed: mode $MODE, release $RELEASE, previous release: ${CURRENT_RELEASE:-none}"
}

# ---------------------------------------------------------------------------- the gate

write_target() {
  local file=$1
  cat >"$file" <<EOF
# Generated by scripts/comprehensive_deploy.sh for release $RELEASE ($MODE mode). No secret is
# written here: every value is read from the environment the script gives the gate.
[targets.$TARGET_NAME]
provider = "external"
description = "release $RELEASE ($MODE mode)"
env_file = "$ENV_FILE"
service_url = "\${TRIA_GATE_SERVICE_URL}"
database_url = "\${TRIA_GATE_DATABASE_URL}"
redis_url = "\${TRIA_GATE_REDIS_URL}"
openai_base_url = "\${TRIA_GATE_OPENAI_BASE_URL}"
openai_api_key = "\${TRIA_GATE_OPENAI_API_KEY}"
openai_model = "\${TRIA_GATE_OPENAI_MODEL}"
openai_embedding_model = "\${TRIA_GATE_OPENAI_EMBEDDING_MODEL}"
chroma_url = "\${TRIA_GATE_CHROMA_URL}"
chroma_collection = "\${TRIA_GATE_CHROMA_COLLECTION}"
diagnostics_token = "\${TRIA_GATE_DIAGNOSTICS_TOKEN}"
secret_key = "\${TRIA_GATE_SECRET_KEY}"

[targets.$TARGET_NAME.minimums]
free_disk_mb = $MIN_DISK_MB
memory_mb = $MIN_MEMORY_MB
cpus = $MIN_CPUS
EOF
}

# Export TRIA_GATE_*: where the release's dependencies are, as the service's settings say.
export_gate_env() {
  local key value
  unset TRIA_GATE_DATABASE_URL
  while IFS= read -r -d '' key && IFS= read -r -d '' value; do
    export "$key=$value"
  done < <("$PYTHON" "$HELPERS/gate_env.py" --env-file "$ENV_FILE" "$@")
  [[ -n ${TRIA_GATE_DATABASE_URL:-} ]]
}

# Called under `if !`: set -e is off in here, so every step's status is checked.
run_gate() {
  local service_url=$1 toml="$STATE_DIR/tria.toml" rc=0
  section "Gate: tria-deploy verify against release $RELEASE"
  export TRIA_GATE_SERVICE_URL=$service_url
  if ! write_target "$toml" || ! mkdir -p "$REPORT_DIR"; then
    log "FAILED: cannot write the gate's target $toml or its report dir $REPORT_DIR"
    return 1
  fi
  (cd "$REPO_ROOT" && "$TRIA_DEPLOY_CLI" verify --target "$TARGET_NAME" --config "$toml" \
    --report-dir "$REPORT_DIR" --suites "$REPO_ROOT/suites") || rc=$?
  log "gate exit status: $rc (reports in $REPORT_DIR)"
  "$PYTHON" "$HELPERS/stages.py" "$REPORT_DIR/verdict.json" && [[ $rc -eq 0 ]]
}

# ---------------------------------------------------------------------------- local mode

# The stack record (state file "stack") says whether a run with this state dir started it: only
# then does --down stop it. Called under `if !`: every step's status is checked.
ensure_stack() {
  local running owner env_file pid waited=0
  if running=$("$PYTHON" "$HELPERS/running_stack.py"); then
    read -r owner env_file <<<"$running"
    if [[ $env_file != "$STACK_ENV" ]] && ! ln -sfn "$env_file" "$STACK_ENV"; then
      log "FAILED: cannot link the stack's env file to $STACK_ENV"
      return 1
    fi
    if [[ $(state_get "$STATE_DIR/stack" owner_pid) == "$owner" ]]; then
      log "local stack: reusing the tria-deploy up stack this state dir started (pid $owner)"
    else
      log "local stack: reusing the running tria-deploy up stack (pid $owner; not started" \
        "here, so --down leaves it running)"
    fi
    return 0
  fi
  rm -f "$STACK_ENV"
  log "local stack: starting tria-deploy up in the background (it outlives this script; stop it" \
    "with --down)"
  detach "$TRIA_DEPLOY_CLI" up --env-file "$STACK_ENV" </dev/null >/dev/null \
    2>>"$STATE_DIR/stack.log" &
  pid=$!
  if ! state_write "$STATE_DIR/stack" mode=local "owner_pid=$pid"; then
    log "FAILED: cannot record the local stack in $STATE_DIR"
    return 1
  fi
  until [[ -s $STACK_ENV ]]; do
    if ! alive "$pid" || ((waited >= START_TIMEOUT * 2)); then
      log "FAILED: the local stack did not come up; the end of $STATE_DIR/stack.log:"
      tail -n 20 "$STATE_DIR/stack.log" || true
      return 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "local stack: up (pid $pid)"
}

# The stack's endpoints for the keys the shell left unset (the shell wins, as with compose).
export_stack_endpoints() {
  local key value
  while IFS='=' read -r key value; do
    if [[ " ${STACK_KEYS[*]} " == *" $key "* && -z ${SHELL_SET[$key]:-} ]]; then
      export "$key=$value"
    fi
  done <"$STACK_ENV"
}

# Start release $1 on port $2 and record it as pending (stopped when this run fails or is
# interrupted); sets STARTED_PID. A signal that arrives between the start and the record is held
# until the record is written, so no release is ever unrecorded.
start_local_release() {
  local name=$1 port=$2 record="$STATE_DIR/pending"
  log "starting release $name: python -m tria_service on 127.0.0.1:$port" \
    "(log: $STATE_DIR/release-$name.log)"
  HELD_SIGNAL=""
  trap 'HELD_SIGNAL=1' INT TERM HUP
  TRIA_ENV_FILE="$ENV_FILE" TRIA_RELEASE_ID="$name" TRIA_HOST=127.0.0.1 TRIA_PORT="$port" \
    detach "$PYTHON" -m tria_service </dev/null >>"$STATE_DIR/release-$name.log" 2>&1 &
  STARTED_PID=$!
  if ! state_write "$record" mode=local "release=$name" "pid=$STARTED_PID" "port=$port" \
    "url=http://127.0.0.1:$port"; then
    trap 'interrupted' INT TERM HUP
    log "FAILED: cannot record release $name in $record"
    stop_release "$STARTED_PID" "$name"
    return 1
  fi
  trap 'interrupted' INT TERM HUP
  [[ -z $HELD_SIGNAL ]] || interrupted
}

# Wait until release $1 (pid $2, port $3) answers /health as itself (its releaseId, not another
# process on the port): it has validated its configuration and every critical dependency by then.
wait_live() {
  local name=$1 pid=$2 port=$3 waited=0 rc=0
  while ((waited < START_TIMEOUT * 2)); do
    if ! alive "$pid"; then
      wait "$pid" 2>/dev/null || rc=$?
      log "FAILED: release $name exited during startup (exit $rc); the end of its log:"
      tail -n 20 "$STATE_DIR/release-$name.log" || true
      return 1
    fi
    if answers "http://127.0.0.1:$port/health" --release "$name"; then
      log "release $name is live on 127.0.0.1:$port (pid $pid)"
      return 0
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "FAILED: release $name did not answer /health within ${START_TIMEOUT}s"
  return 1
}

# Start the new release on a free port until it is live; sets STARTED_PID and STARTED_PORT. A
# port taken by someone else between the choice and the bind costs another try, nothing more.
launch_new_release() {
  local attempt seen=0 release_log="$STATE_DIR/release-$RELEASE.log"
  for attempt in 1 2 3; do
    STARTED_PORT=$(free_port) || return 1
    if [[ -f $release_log ]]; then
      seen=$(wc -l <"$release_log") || return 1
    fi
    start_local_release "$RELEASE" "$STARTED_PORT" || return 1
    if wait_live "$RELEASE" "$STARTED_PID" "$STARTED_PORT"; then
      return 0
    fi
    if ! tail -n "+$((seen + 1))" "$release_log" | grep -i 'address already in use' >/dev/null; then
      return 1
    fi
    log "port $STARTED_PORT was taken before release $RELEASE bound it (try $attempt of 3)"
  done
  return 1
}

ready() {
  answers "$1$READINESS_PATH"
}

deploy_local() {
  local previous_pid previous_port port
  section "Bring up (local mode)"
  previous_pid=$(state_get "$STATE_DIR/current" pid)
  previous_port=$(state_get "$STATE_DIR/current" port)
  if [[ -f $STATE_DIR/pending ]]; then
    log "release $(state_get "$STATE_DIR/pending" release) was left pending by an interrupted" \
      "run: stopping it"
    stop_pending
  fi
  if ! ensure_stack; then
    rollback_local "$previous_pid" "$previous_port"
  fi
  export_stack_endpoints
  if ! launch_new_release; then
    rollback_local "$previous_pid" "$previous_port"
  fi
  port=$STARTED_PORT
  if ! export_gate_env || ! run_gate "http://127.0.0.1:$port"; then
    log "FAILED: release $RELEASE did not pass the gate"
    rollback_local "$previous_pid" "$previous_port"
  fi
  state_write "$STATE_DIR/current" mode=local "release=$RELEASE" "pid=$STARTED_PID" \
    "port=$port" "url=http://127.0.0.1:$port"
  rm -f "$STATE_DIR/pending"
  section "Ready"
  if [[ -n $CURRENT_RELEASE && -n $previous_pid ]]; then
    stop_release "$previous_pid" "$CURRENT_RELEASE"
  fi
  log "✅ Ready to accept traffic: release $RELEASE at http://127.0.0.1:$port"
  exit "$EXIT_READY"
}

rollback_local() {
  local previous_pid=$1 previous_port=$2
  section "Rollback"
  stop_pending
  if [[ -z $CURRENT_RELEASE ]]; then
    log "no previous release to roll back to: nothing serves — exit $EXIT_NOTHING_SERVING"
    exit "$EXIT_NOTHING_SERVING"
  fi
  if ! is_release_process "$previous_pid"; then
    # Restarting it here would run it with this run's environment, not the one it passed the
    # gate with: that is a new deployment, and it must go through the gate.
    log "FAILED: previous release $CURRENT_RELEASE is no longer running: nothing serves;" \
      "deploy it again through the gate ($0 --release $CURRENT_RELEASE)"
    exit "$EXIT_NOTHING_SERVING"
  fi
  if ! ready "http://127.0.0.1:$previous_port"; then
    log "FAILED: previous release $CURRENT_RELEASE is running but not ready: nothing serves"
    exit "$EXIT_NOTHING_SERVING"
  fi
  log "rolled back to release $CURRENT_RELEASE: it is ready at http://127.0.0.1:$previous_port"
  exit "$EXIT_ROLLED_BACK"
}

# ---------------------------------------------------------------------------- compose mode

compose() {
  local profile=()
  if grep -Eq '^[[:space:]]*OPENAI_BASE_URL=.*openai-standin' "$ENV_FILE"; then
    profile=(--profile standin)
  fi
  docker compose --env-file "$ENV_FILE" -f "$COMPOSE_FILE" "${profile[@]}" "$@"
}

published() {
  compose port "$1" "$2" | tail -n 1
}

deploy_compose() {
  local service_address
  section "Bring up (compose mode): image tria-deploy:$RELEASE"
  # The stack is this state dir's to stop (--down) only if nothing of it ran before.
  if [[ -z $(state_get "$STATE_DIR/stack" mode) && -z $(compose ps -q 2>/dev/null) ]]; then
    state_write "$STATE_DIR/stack" mode=compose
  fi
  log "the service container is replaced in place: release $RELEASE takes traffic before the gate"
  if ! TRIA_SERVICE_IMAGE="tria-deploy:$RELEASE" TRIA_RELEASE_ID="$RELEASE" \
    compose up -d --build --wait; then
    log "FAILED: docker compose up did not bring release $RELEASE up healthy"
    rollback_compose
  fi
  service_address=$(published service 8000)
  local args=(--published "postgres=$(published postgres 5432)"
    --published "redis=$(published redis 6379)" --published "chroma=$(published chroma 8000)")
  if compose ps --services 2>/dev/null | grep -x openai-standin >/dev/null; then
    args+=(--published "openai-standin=$(published openai-standin 8080)")
  fi
  if ! export_gate_env "${args[@]}" || ! run_gate "http://$service_address"; then
    log "FAILED: release $RELEASE did not pass the gate"
    rollback_compose
  fi
  state_write "$STATE_DIR/current" mode=compose "release=$RELEASE" "url=http://$service_address"
  section "Ready"
  log "✅ Ready to accept traffic: release $RELEASE at http://$service_address"
  exit "$EXIT_READY"
}

rollback_compose() {
  section "Rollback"
  if [[ -z $CURRENT_RELEASE ]]; then
    log "no previous release to roll back to: stopping the failed release's service"
    compose stop service || true
    exit "$EXIT_NOTHING_SERVING"
  fi
  log "rolling back to image tria-deploy:$CURRENT_RELEASE"
  if ! TRIA_SERVICE_IMAGE="tria-deploy:$CURRENT_RELEASE" TRIA_RELEASE_ID="$CURRENT_RELEASE" \
    compose up -d --no-build --wait service; then
    log "FAILED: release $CURRENT_RELEASE did not come back healthy: nothing serves"
    exit "$EXIT_NOTHING_SERVING"
  fi
  local url
  url="http://$(published service 8000)"
  if ! ready "$url"; then
    log "FAILED: release $CURRENT_RELEASE is up but not ready: nothing serves"
    exit "$EXIT_NOTHING_SERVING"
  fi
  log "rolled back to release $CURRENT_RELEASE: it is ready at $url"
  exit "$EXIT_ROLLED_BACK"
}

# ---------------------------------------------------------------------------- --down

# The stack is stopped only when a run with this state dir started it: a stack it merely reused
# may serve someone else.
stop_own_stack() {
  local owner running
  case $(state_get "$STATE_DIR/stack" mode) in
    compose) compose down ;;
    local)
      owner=$(state_get "$STATE_DIR/stack" owner_pid)
      if running=$("$PYTHON" "$HELPERS/running_stack.py") && [[ ${running%% *} == "$owner" ]]; then
        "$TRIA_DEPLOY_CLI" down
      else
        log "local stack: the one this state dir started is no longer running"
      fi
      ;;
    *) log "local stack: not started by this state dir: left running" ;;
  esac
}

down() {
  lock_state
  section "Stopping what comprehensive_deploy.sh left running with $STATE_DIR"
  local pid
  stop_pending
  pid=$(state_get "$STATE_DIR/current" pid)
  if [[ -n $pid ]]; then
    stop_release "$pid" "$(state_get "$STATE_DIR/current" release)"
  fi
  stop_own_stack
  rm -f "$STATE_DIR/current" "$STATE_DIR/stack" "$STACK_ENV"
  log "stopped"
  exit "$EXIT_READY"
}

main() {
  parse_args "$@"
  # Which stack keys the caller's shell set: those win over the local stack's.
  declare -gA SHELL_SET=()
  local key
  for key in "${STACK_KEYS[@]}"; do
    [[ -z ${!key+x} ]] || SHELL_SET[$key]=1
  done
  start_logging
  if [[ $ACTION == down ]]; then
    down
  fi
  log "deploying release $RELEASE (requested mode: $MODE)"
  lock_state
  preflight
  if [[ $MODE == compose ]]; then
    deploy_compose
  else
    deploy_local
  fi
}

main "$@"
