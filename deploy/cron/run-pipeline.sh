#!/usr/bin/env bash
# Run one mlfactor pipeline from cron: environment from a file, no overlap, exit code passed through.
#   run-pipeline.sh PIPELINE [mlfactor run options...]
# MLFACTOR_HOME: the project checkout (default: two folders above this script).
# MLFACTOR_ENV_FILE: the environment file (default /etc/mlfactor/env; KEY=value lines, secrets
#   included, readable by the cron user only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${MLFACTOR_HOME:-$(cd "$here/../.." && pwd)}"
env_file="${MLFACTOR_ENV_FILE:-/etc/mlfactor/env}"
pipeline="${1:?usage: run-pipeline.sh PIPELINE [mlfactor run options...]}"
shift
if [[ -f "$env_file" ]]; then
    set -a
    # shellcheck disable=SC1090
    source "$env_file"
    set +a
fi
export MLFACTOR_LOG_FORMAT="${MLFACTOR_LOG_FORMAT:-json}"
lock="${TMPDIR:-/tmp}/mlfactor-$(basename "$pipeline" .yaml).lock"
cd "$home"
# -n: when the previous run still holds the lock, skip this one (like concurrencyPolicy: Forbid).
exec flock -n -E 75 "$lock" "$home/.venv/bin/mlfactor" run "$pipeline" --no-progress "$@"
