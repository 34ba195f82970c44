#!/usr/bin/env bash
# Wait for a Dataflow job or a Vertex AI custom job to end; fail unless it succeeded.
#
#   deploy/wait_job.sh dataflow|vertex REGION JOB [TIMEOUT_S] [POLL_S]
#
# JOB: a Dataflow job id, a Vertex AI custom job (id or projects/…/customJobs/ID), or @FILE to
# read it from the last non-empty line of a file (what the submitting step wrote; client
# libraries may log lines before it). Flex Template runs and custom jobs
# return at once, so a Cloud Build chain waits here: exit 0 when the job succeeded
# (JOB_STATE_DONE / JOB_STATE_SUCCEEDED), 1 when it ended otherwise or TIMEOUT_S (default 24 h)
# passed, 2 on bad usage. Up to 5 polls in a row may fail (network, quota) before giving up.
set -euo pipefail

usage() {
  echo "usage: $0 dataflow|vertex REGION JOB|@FILE [TIMEOUT_S] [POLL_S]" >&2
  exit 2
}
[[ $# -ge 3 && $# -le 5 ]] || usage
kind=$1
region=$2
job=$3
timeout_s=${4:-86400}
poll_s=${5:-60}
[[ $timeout_s =~ ^[0-9]+$ && $poll_s =~ ^[0-9]+$ ]] || usage
if [[ $job == @* ]]; then
  job=$(grep -v '^[[:space:]]*$' "${job#@}" | tail -n 1 | tr -d '[:space:]' || true)
fi
[[ -n $job ]] || { echo "$0: no job id" >&2; exit 2; }

case $kind in
  dataflow)
    describe=(gcloud dataflow jobs describe "$job" --region="$region" --format="value(currentState)")
    done_state=JOB_STATE_DONE
    # Terminal states other than success; anything else (PENDING, QUEUED, RUNNING, STOPPED =
    # not started yet, DRAINING, CANCELLING, RESOURCE_CLEANING_UP) is waited on.
    failed_states=" JOB_STATE_FAILED JOB_STATE_CANCELLED JOB_STATE_DRAINED JOB_STATE_UPDATED "
    ;;
  vertex)
    describe=(gcloud ai custom-jobs describe "$job" --region="$region" --format="value(state)")
    done_state=JOB_STATE_SUCCEEDED
    failed_states=" JOB_STATE_FAILED JOB_STATE_CANCELLED JOB_STATE_EXPIRED JOB_STATE_PARTIALLY_SUCCEEDED "
    ;;
  *) usage ;;
esac

deadline=$(( $(date +%s) + timeout_s ))
errors=0
while true; do
  if state=$("${describe[@]}"); then
    errors=0
  else
    errors=$(( errors + 1 ))
    state="(describe failed, ${errors} in a row)"
    if (( errors >= 5 )); then
      echo "$0: cannot read the state of $kind job $job" >&2
      exit 1
    fi
  fi
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $kind job $job: $state"
  if [[ $state == "$done_state" ]]; then
    exit 0
  fi
  if [[ $failed_states == *" $state "* ]]; then
    echo "$0: $kind job $job ended in $state" >&2
    exit 1
  fi
  if (( $(date +%s) >= deadline )); then
    echo "$0: $kind job $job still $state after ${timeout_s}s; it keeps running (cancel it by hand)" >&2
    exit 1
  fi
  sleep "$poll_s"
done
