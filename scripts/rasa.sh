#!/usr/bin/env bash
# The optional Rasa NLU backend, in its own Python 3.10 virtualenv (Rasa 3.6 cannot share
# daoban's environment). Usage: scripts/rasa.sh setup|train|start|stop|status
#   setup  create the virtualenv (reused when present) and install rasa==3.6.21 + jieba
#   train  generate the Rasa project from daoban's files; train unless a model for the
#          same training data (hash in the model name) exists
#   start  setup + train + `rasa run --enable-api` on 127.0.0.1:$DAOBAN_RASA_PORT (5005)
#   bot    setup + train the small benchmark bot (benchmarks/vs_rasa.py: the same NLU plus
#          one rule per intent) unless trained; prints the model's path
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DAOBAN_RASA_VENV:-$HOME/.cache/daoban/rasa-3.6.21-py310}
PROJECT=${DAOBAN_RASA_PROJECT:-var/rasa}
# Trained models are kept outside the work tree, named by the hash of their training data:
# a fresh clone with unchanged data reuses the model instead of training again.
MODELS=${DAOBAN_RASA_MODELS:-$HOME/.cache/daoban/rasa-models}
PORT=${DAOBAN_RASA_PORT:-5005}
# One pid file per port, shared by every checkout on this machine: a server started from
# another clone (a CI run, an earlier session) is stopped too, not answered for. The same
# pid is also written to $PROJECT/rasa.pid; `daoban eval --nlu rasa|both` reads these files
# (DAOBAN_RASA_PIDFILE first) for Rasa's memory.
PIDFILE=${DAOBAN_RASA_PIDFILE:-$HOME/.cache/daoban/rasa-$PORT.pid}
PY=${DAOBAN_PY:-.venv/bin/python}
export RASA_TELEMETRY_ENABLED=false
# Offline: Rasa must never fetch anything at run time.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2

find_python310() {
  if command -v pyenv >/dev/null 2>&1 && [ -x "$(pyenv root)/versions/3.10.13/bin/python3.10" ]; then
    echo "$(pyenv root)/versions/3.10.13/bin/python3.10"
  elif command -v python3.10 >/dev/null 2>&1; then
    command -v python3.10
  else
    echo "scripts/rasa.sh: Python 3.10 not found (pyenv 3.10.13 or python3.10 on PATH); Rasa 3.6 needs it" >&2
    return 1
  fi
}

setup() {
  if [ -x "$VENV/bin/rasa" ]; then return 0; fi
  local py; py=$(find_python310)
  echo "creating the Rasa virtualenv in $VENV (about 80 s, 2.7 GB)" >&2
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "rasa==3.6.21" jieba
}

train() {
  setup
  mkdir -p "$PROJECT"
  local name; name=$("$PY" -m nlu.rasa_project "$PROJECT")
  mkdir -p "$MODELS"
  if [ ! -f "$MODELS/$name.tar.gz" ]; then
    echo "training $name" >&2
    (cd "$PROJECT" && "$VENV/bin/rasa" train nlu --fixed-model-name "$name" --out "$MODELS" \
      --nlu data/nlu.yml --config config.yml >train.log 2>&1 </dev/null) \
      || { tail -30 "$PROJECT/train.log" >&2; exit 1; }
  fi
  echo "$name"
}

bot() {
  setup
  local dir=${DAOBAN_RASA_BOT:-var/rasa-bot}
  mkdir -p "$dir" "$PROJECT/.rasa/cache"
  local name; name=$("$PY" -m nlu.rasa_project --bot "$dir")
  # Rasa's training cache of the NLU project: the bot's NLU part (same pipeline, same
  # data) is then taken from it instead of trained again.
  local cache; cache=$(cd "$PROJECT/.rasa/cache" && pwd)
  mkdir -p "$MODELS"
  if [ ! -f "$MODELS/$name.tar.gz" ]; then
    echo "training $name" >&2
    (cd "$dir" && RASA_CACHE_DIRECTORY="$cache" "$VENV/bin/rasa" train --fixed-model-name "$name" \
      --out "$MODELS" --data data --domain domain.yml --config config.yml >train.log 2>&1 </dev/null) \
      || { tail -30 "$dir/train.log" >&2; exit 1; }
  fi
  echo "$MODELS/$name.tar.gz"
}

stop() {
  local f
  for f in "$PIDFILE" "$PROJECT/rasa.pid"; do
    if [ -f "$f" ]; then
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  for _ in $(seq 1 20); do  # until the port is free
    curl -sf "http://127.0.0.1:$PORT/status" >/dev/null 2>&1 || return 0
    sleep 0.5
  done
}

start() {
  local name; name=$(train)
  stop
  if curl -sf "http://127.0.0.1:$PORT/status" >/dev/null 2>&1; then
    echo "scripts/rasa.sh: port $PORT is held by a server this script did not start; stop it or set DAOBAN_RASA_PORT" >&2
    return 1
  fi
  mkdir -p "$(dirname "$PIDFILE")"
  # exec: the background job's pid is Rasa's own; every stream goes to the log, so no
  # caller (a pipe, CI) waits on the server.
  (cd "$PROJECT" && exec nohup "$VENV/bin/rasa" run --enable-api -i 127.0.0.1 -p "$PORT" \
     -m "$MODELS/$name.tar.gz" >rasa.log 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
  echo $! >"$PROJECT/rasa.pid"
  for _ in $(seq 1 120); do
    # Answering is not enough: it must be this server, with this model.
    if curl -sf "http://127.0.0.1:$PORT/status" 2>/dev/null | grep -q "$name"; then
      echo "Rasa answers on http://127.0.0.1:$PORT (model $name)" >&2
      return 0
    fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 1
  done
  tail -30 "$PROJECT/rasa.log" >&2
  echo "scripts/rasa.sh: Rasa did not start" >&2
  return 1
}

status() { curl -sf "http://127.0.0.1:$PORT/status" && echo; }

"${1:-start}"
