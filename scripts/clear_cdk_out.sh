#!/usr/bin/env bash
# clear_cdk_out.sh: empty the folder `cdk synth` is about to write, when only CDK wrote what is in it.
#
# A cloud assembly (manifest.json) is removed, so no template of a removed stack is checked. So is what a
# failed synth leaves (e.g. no internet for the ImageNet weights): staged assets, asset.<64 hex>[.ext], staged
# before the app failed, the CLI's synth.lock and read.*.lock files, and the files a synth writes beside the
# manifest. Anything else there may be the user's: the folder is left alone and the script fails.
# Usage: scripts/clear_cdk_out.sh DIR
# Exit status: 0 when DIR is absent, empty or was removed; 1 when DIR holds something CDK does not write.
set -uo pipefail

dir="${1:?usage: clear_cdk_out.sh DIR}"
[[ -e "$dir" ]] || exit 0
if [[ ! -d "$dir" ]]; then
  echo "CDK_OUT=$dir exists and is not a folder: choose another folder" >&2
  exit 1
fi
if [[ -f "$dir/manifest.json" ]]; then
  rm -rf "$dir"
  exit 0
fi

# What only `cdk synth` writes at the top of its output folder.
synth_only='^(asset\.[0-9a-f]{64}(\.[A-Za-z0-9]+)?|synth\.lock|read\.[0-9]+\.[0-9]+\.lock|cdk\.out|tree\.json|validation-report\.json|[A-Za-z0-9-]+\.(template|assets|metadata)\.json)$'
others=()
shopt -s nullglob dotglob
for entry in "$dir"/*; do
  name="${entry##*/}"
  [[ "$name" =~ $synth_only ]] || others+=("$name")
done
if ((${#others[@]})); then
  echo "CDK_OUT=$dir exists and is not a cloud assembly (no manifest.json), and holds what CDK does not" \
    "write (${others[*]:0:5}): choose another folder" >&2
  exit 1
fi
if [[ -n "$(ls -A "$dir")" ]]; then
  echo "CDK_OUT=$dir holds only what an earlier, failed synth left (staged assets): removed"
fi
rm -rf "$dir"
