#!/usr/bin/env bash
# install_python_deps.sh: EMR bootstrap action of the Fruits! pipeline.
#
# What:   installs, for python3.11 (the interpreter the cluster's PySpark runs on), exactly the pins of
#         spark_job/requirements.txt (shipped to S3 next to this script: one source of truth for what the
#         tests run locally and what EMR installs), then imports every pinned package and prints its
#         version. Installs python3.11 and its pip with dnf first when they are missing.
# Where:  on every EMR node (primary, core, task), as the `hadoop` user with passwordless sudo, before
#         the applications (Spark) are installed. Amazon Linux 2023 (EMR 7.x) keeps /usr/bin/python3 at
#         3.9; python3.11 installs beside it. Runs on any Linux box too (the tests run it in a sandbox).
# Usage:  install_python_deps.sh REQUIREMENTS_URI
#           REQUIREMENTS_URI  s3://bucket/key/requirements.txt (copied with `aws s3 cp`) or a local path.
# Environment overrides:
#   FRUITS_PYTHON        absolute path of the interpreter to install into  (default /usr/bin/python3.11)
#   FRUITS_DNF_PACKAGES  RPMs installed when that interpreter or its pip is missing
#                                                             (default "python3.11 python3.11-pip")
#   FRUITS_PIP_NO_CACHE  1: pip --no-cache-dir, keeps the root volume small (default); 0: use pip's cache
# Exit status: 0 when every pin is installed at its version and imports; otherwise an ERROR line on
#   stderr and 2 usage, 3 requirements not readable or download failed, 4 no usable python/pip,
#   5 pip install failed (e.g. a pin that does not exist for this Python or platform), 6 import check.
# Idempotent: a second run finds python3.11 present, pip reports every pin already satisfied, and the
#   import check runs again.
# Logs: timestamped lines; EMR keeps this script's output in
#   <LogUri><cluster-id>/node/<instance-id>/bootstrap-actions/<n>/stdout.gz and stderr.gz.
set -euo pipefail

readonly SCRIPT_NAME="install_python_deps"
PYTHON="${FRUITS_PYTHON:-/usr/bin/python3.11}"
DNF_PACKAGES="${FRUITS_DNF_PACKAGES:-python3.11 python3.11-pip}"
PIP_NO_CACHE="${FRUITS_PIP_NO_CACHE:-1}"

log() { printf '%s [%s] INFO %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SCRIPT_NAME" "$*"; }
err() { printf '%s [%s] ERROR %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SCRIPT_NAME" "$*" >&2; }
die() {
  local code=$1
  shift
  err "$*"
  exit "$code"
}
usage() {
  printf 'usage: %s REQUIREMENTS_URI   (s3://bucket/key/requirements.txt or a local path)\n' "$0" >&2
}

if [[ $# -ne 1 || -z "${1:-}" ]]; then
  usage
  die 2 "expected exactly one argument, the URI of the requirements file; got $#"
fi
readonly REQUIREMENTS_URI=$1

case "$PYTHON" in
  /*) ;;
  *) die 2 "FRUITS_PYTHON must be an absolute path, got '$PYTHON'" ;;
esac

workdir=$(mktemp -d "${TMPDIR:-/tmp}/${SCRIPT_NAME}.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

# 1. The requirements file.
case "$REQUIREMENTS_URI" in
  s3://*)
    command -v aws >/dev/null 2>&1 || die 3 "the aws CLI is not on PATH: cannot download $REQUIREMENTS_URI"
    requirements="$workdir/requirements.txt"
    log "downloading $REQUIREMENTS_URI"
    aws s3 cp --only-show-errors "$REQUIREMENTS_URI" "$requirements" ||
      die 3 "download failed: aws s3 cp $REQUIREMENTS_URI (check the key and the instance role's s3:GetObject)"
    ;;
  *://*)
    die 3 "unsupported URI scheme in '$REQUIREMENTS_URI': use s3://... or a local path"
    ;;
  *)
    requirements=$REQUIREMENTS_URI
    [[ -f "$requirements" && -r "$requirements" ]] || die 3 "requirements file not found or not readable: $requirements"
    ;;
esac
[[ -s "$requirements" ]] || die 3 "requirements file is empty: $REQUIREMENTS_URI"
log "requirements ($REQUIREMENTS_URI):"
grep -vE '^[[:space:]]*(#|$)' "$requirements" | sed 's/^/    /' || true

# 2. The interpreter and its pip (python3.11-pip is not on every AMI).
has_pip() { [[ -x "$PYTHON" ]] && "$PYTHON" -m pip --version >/dev/null 2>&1; }
if has_pip; then
  log "using $PYTHON ($("$PYTHON" --version 2>&1)), $("$PYTHON" -m pip --version)"
else
  command -v dnf >/dev/null 2>&1 ||
    die 4 "$PYTHON or its pip is missing and dnf is not available to install: $DNF_PACKAGES"
  log "$PYTHON or its pip is missing: sudo dnf -y install $DNF_PACKAGES"
  # shellcheck disable=SC2086 # DNF_PACKAGES is a space-separated list of package names
  sudo dnf -y install $DNF_PACKAGES || die 4 "dnf install failed: $DNF_PACKAGES"
  has_pip || die 4 "$PYTHON -m pip still does not run after installing: $DNF_PACKAGES"
  log "installed $PYTHON ($("$PYTHON" --version 2>&1)), $("$PYTHON" -m pip --version)"
fi

# 3. The pins, system-wide for that interpreter. pip skips what is already installed at the pinned version.
pip_args=(install --disable-pip-version-check --progress-bar off -r "$requirements")
if [[ "$PIP_NO_CACHE" == "1" ]]; then
  pip_args+=(--no-cache-dir)
fi
log "sudo $PYTHON -m pip ${pip_args[*]}"
pip_status=0
sudo env PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip "${pip_args[@]}" || pip_status=$?
if [[ $pip_status -ne 0 ]]; then
  die 5 "pip install failed (exit $pip_status) for $REQUIREMENTS_URI: a pin could not be resolved or installed \
for $("$PYTHON" --version 2>&1) on $(uname -m); see pip's output above"
fi

# 4. Import check: every requirement of the file, by its import name, at its pinned version.
log "import check"
check_status=0
TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg "$PYTHON" - "$requirements" <<'PY' || check_status=$?
import importlib
import importlib.metadata as md
import re
import sys
import time


def line(level, msg):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} [install_python_deps] {level} {msg}", file=sys.stderr if level == "ERROR" else sys.stdout,
          flush=True)


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(installed, pinned):
    if "*" in pinned:  # ==2.21.* : pip already enforced it
        return True
    try:
        from pip._vendor.packaging.version import Version  # pip is there: it just ran

        return Version(installed) == Version(pinned)
    except Exception:
        return installed == pinned


requirements = []
with open(sys.argv[1], encoding="utf-8") as handle:
    for raw in handle:
        text = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not text or text.startswith("-"):  # blank, comment, or a pip option (--find-links, -r, ...)
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([^\s,;]+)\s*$)?", text)
        if not match:
            line("ERROR", f"cannot parse requirement line: {text!r}")
            sys.exit(1)
        requirements.append((match.group(1), match.group(2), text))

modules_of = {}
for module, dists in md.packages_distributions().items():
    if module.startswith("_"):
        continue
    for dist in dists:
        modules_of.setdefault(canon(dist), []).append(module)

failures = 0
for name, pinned, text in requirements:
    try:
        installed = md.version(name)
    except md.PackageNotFoundError:
        line("ERROR", f"{text}: not installed")
        failures += 1
        continue
    if pinned and not same_version(installed, pinned):
        line("ERROR", f"{text}: installed version is {installed}")
        failures += 1
        continue
    candidates = sorted(set(modules_of.get(canon(name), [])))
    preferred = canon(name).replace("-", "_")
    if preferred in candidates:
        modules = [preferred]
    else:
        modules = candidates or [preferred]
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an ImportError, or anything a broken package raises at import
            line("ERROR", f"import {module_name} failed ({text}): {type(exc).__name__}: {exc}")
            failures += 1
            continue
        version = getattr(module, "__version__", installed)
        line("INFO", f"import ok: {module_name} {version} ({name}=={installed})")

if failures:
    line("ERROR", f"{failures} of {len(requirements)} requirements failed the import check")
    sys.exit(1)
line("INFO", f"all {len(requirements)} requirements import")
PY
if [[ $check_status -ne 0 ]]; then
  die 6 "import check failed for $PYTHON (exit $check_status): see the ERROR lines above"
fi
log "done: $PYTHON has every pin of $REQUIREMENTS_URI"
