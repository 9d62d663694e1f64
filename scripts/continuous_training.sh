#!/usr/bin/env bash
# Continuous training with nb2prod, one pass (run it nightly from cron or a CI schedule):
#   1. monitor the champion's traffic;
#   2. on drift, rebuild the notebook on new data as the challenger (each build is an MLflow
#      run and a registry version; a new version is the `challenger`);
#   3. shadow the challenger against the champion on the same traffic;
#   4. promote it only if it passes (its own gates, the champion's score on its evaluation
#      data within the notebook's promotion margin, and the shadow check).
#
# usage: continuous_training.sh NOTEBOOK TRAFFIC NEW_DATA [OUTCOMES]
#   TRAFFIC   the service's prediction-log directory (NB2PROD_LOG_DIR), or a parquet/CSV of rows
#   NEW_DATA  the labelled table the notebook trains on (its `data` parameter)
#   OUTCOMES  optional: the true outcomes of TRAFFIC (parquet/CSV), so the shadow check
#             compares the two models' quality and not only their agreement
# Environment: NB2PROD_NAME (default: the notebook's file name), REPORTS (default: reports),
# MLFLOW_TRACKING_URI (default: sqlite:///mlflow.db here), BENTOML_HOME.
# Exit: 0 nothing to do or promoted, 1 drift but the challenger was refused, 2 bad input.
set -uo pipefail
notebook=$1 traffic=$2 data=$3 outcomes=${4:-}
name=${NB2PROD_NAME:-$(basename "$notebook" .ipynb)}
reports=${REPORTS:-reports}
day=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$reports"

nb2prod monitor "$name@champion" --current "$traffic" --json "$reports/monitor-$day.json"
case $? in
  0) echo "$day: no drift; $name@champion stays"; exit 0 ;;
  1) echo "$day: drift; building a challenger on $data" ;;
  *) echo "$day: the monitoring input is bad (above)"; exit 2 ;;
esac

nb2prod build "$notebook" -p data "$data" || { echo "$day: the challenger did not build"; exit 1; }

target=()
[ -n "$outcomes" ] && target=(--target "$outcomes")
nb2prod shadow "$name@champion" "$name@challenger" --traffic "$traffic" "${target[@]}" \
  --json "$reports/shadow-$day.json" --html "$reports/shadow-$day.html"
case $? in
  0) ;;
  1) echo "$day: the challenger failed the shadow check; $name@champion stays"; exit 1 ;;
  *) echo "$day: the shadow input is bad (above)"; exit 2 ;;
esac

nb2prod promote "$name@challenger" --reason "drift on $day; shadow passed" \
  || { echo "$day: promotion refused; $name@champion stays"; exit 1; }
echo "$day: promoted; nb2prod versions $name shows the history"
