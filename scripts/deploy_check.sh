#!/usr/bin/env bash
# deploy_check.sh: the offline checks to pass before `cdk deploy` (`make deploy-check` runs it).
#
# Checks, each reported PASS or FAIL with its duration, every one run even when an earlier one failed:
#   - synth           `cdk synth` of every stack into $CDK_OUT (offline, pinned CLI from node_modules)
#   - cdk-nag         AwsSolutionsChecks is registered in app.py (so an unacknowledged finding fails synth,
#                     which tests/infra/test_nag.py proves); scripts/nag_summary.py lists the acknowledgements
#                     the assembly's stack metadata records and fails on one on a whole stack or without a
#                     specific reason (a passing synth's validation-report.json is always empty)
#   - cfn-lint        every $CDK_OUT/*.template.json (settings: .cfnlintrc.yaml)
#   - shellcheck      bootstrap/*.sh (the EMR bootstrap action) and scripts/*.sh
#   - step-contract   tests/deploy: the synthesized cluster's fit and transform steps run on local Spark, in
#                     the venv of the synthesized release's Spark series (scripts/release_series.py): $VENV
#                     for 3.5 (emr-7.x), $VENV41 for 4.1 (emr-spark-8.1.0)
# Usage: scripts/deploy_check.sh [CDK CLI ARGS...]   e.g. -c taskCapacity=4 (checks that configuration),
#   -c releaseLabel=emr-spark-8.1.0 (the LTS line)
# Environment: CDK_OUT (default cdk.out), VENV (default .venv), VENV41 (default .venv-spark41),
#   DEPLOY_CHECK_LOGS (default build/deploy-check). Logs: $DEPLOY_CHECK_LOGS/<check>.log.
# Exit status: 0 when every check passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
CDK_OUT="${CDK_OUT:-cdk.out}"
VENV="${VENV:-.venv}"
VENV41="${VENV41:-.venv-spark41}"
LOG_DIR="${DEPLOY_CHECK_LOGS:-build/deploy-check}"
mkdir -p "$LOG_DIR"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true

names=()
verdicts=()
failed=0

# run_check NAME COMMAND...: runs COMMAND with its output in $LOG_DIR/NAME.log; on failure shows its tail.
run_check() {
  local name=$1 log="$LOG_DIR/$1.log" start status
  shift
  printf '== %s: %s\n' "$name" "$*"
  start=$SECONDS
  "$@" >"$log" 2>&1
  status=$?
  names+=("$name")
  if [[ $status -eq 0 ]]; then
    verdicts+=("PASS  $((SECONDS - start))s  $(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-80)")
  else
    verdicts+=("FAIL  $((SECONDS - start))s, exit $status, log $log")
    failed=1
    tail -n 40 "$log" | sed 's/^/   | /'
  fi
}

skip_check() {
  printf '== %s: not run (%s)\n' "$1" "$2"
  names+=("$1")
  verdicts+=("FAIL  not run: $2")
  failed=1
}

nag_findings() {
  grep -q 'AwsSolutionsChecks' app.py || {
    echo "app.py does not register cdk-nag's AwsSolutionsChecks"
    return 1
  }
  "$VENV/bin/python" scripts/nag_summary.py "$CDK_OUT"
}

# A fresh assembly: no template of a removed stack is linted. Only ever delete what CDK wrote there: a cloud
# assembly, or what a failed synth left (staged assets); anything else may be the user's (clear_cdk_out.sh).
bash scripts/clear_cdk_out.sh "$CDK_OUT" || exit 1
run_check synth npx --no-install cdk synth --quiet --no-notices -o "$CDK_OUT" "$@"
synth_ok=$((failed == 0))
run_check cdk-nag nag_findings

shopt -s nullglob
templates=("$CDK_OUT"/*.template.json)
if ((${#templates[@]})); then
  run_check cfn-lint "$VENV/bin/cfn-lint" "${templates[@]}"
else
  skip_check cfn-lint "no template in $CDK_OUT"
fi
run_check shellcheck shellcheck bootstrap/*.sh scripts/*.sh
series=""
((synth_ok)) && series=$("$VENV/bin/python" scripts/release_series.py "$CDK_OUT")
case "$series" in
  3.5) step_venv=$VENV ;;
  4.1) step_venv=$VENV41 ;;
  *) step_venv="" ;;
esac
if ((!synth_ok)); then
  skip_check step-contract "synth failed"
elif [[ -z "$step_venv" ]]; then
  skip_check step-contract "no local venv for the synthesized release's Spark series '$series'"
elif [[ ! -x "$step_venv/bin/python" ]]; then
  skip_check step-contract "$step_venv (pyspark $series) is missing: make venv creates it"
else
  echo "== step-contract runs on Spark $series: $step_venv"
  run_check step-contract env FRUITS_CDK_OUT="$CDK_OUT" "$step_venv/bin/python" -m pytest -q -p no:cacheprovider tests/deploy
fi

printf '\ndeploy-check summary\n'
for i in "${!names[@]}"; do
  printf '  %-14s %s\n' "${names[$i]}" "${verdicts[$i]}"
done
if ((failed)); then
  printf 'deploy-check: FAIL (logs in %s/)\n' "$LOG_DIR"
  exit 1
fi
printf "deploy-check: PASS (the checked assembly is in %s/)\n" "$CDK_OUT"
