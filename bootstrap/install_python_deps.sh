#!/usr/bin/env bash
# install_python_deps.sh: EMR bootstrap action of the Fruits! pipeline.
#
# What:   installs, for python3.11 (the interpreter the cluster's PySpark runs on), exactly the job's lock
#         (spark_job/requirements.<arch>.lock: every package pinned, every file's sha256 listed) from the
#         wheelhouse shipped with the stack, never from an index: pip itself reads the lock
#         (`pip install --no-index --find-links <wheelhouse> --require-hashes -r <lock>`), so a wheel whose
#         bytes differ from the lock is refused. Then imports every installed wheel's modules and checks its
#         version. Installs python3.11 and its pip with dnf first when they are missing (dnf reads Amazon
#         Linux's repositories, which are S3 buckets: no internet needed).
# Where:  on every EMR node (primary, core, task), as the `hadoop` user with passwordless sudo, before
#         the applications (Spark) are installed. Amazon Linux 2023 (EMR 7.x) keeps /usr/bin/python3 at
#         3.9; python3.11 installs beside it. Runs on any Linux box too (the tests run it in a sandbox).
# Usage:  install_python_deps.sh LOCK_URI WHEELHOUSE_URI
#           LOCK_URI        s3://bucket/key of the lock (copied with `aws s3 cp`) or a local path
#           WHEELHOUSE_URI  s3://bucket/key.zip of the wheelhouse (the CDK asset: a zip of the wheels), or
#                           a local .zip or directory of wheels
# Environment overrides:
#   FRUITS_PYTHON        absolute path of the interpreter to install into  (default /usr/bin/python3.11)
#   FRUITS_DNF_PACKAGES  RPMs installed when that interpreter or its pip is missing
#                                                             (default "python3.11 python3.11-pip")
#   FRUITS_PIP_NO_CACHE  1: pip --no-cache-dir, keeps the root volume small (default); 0: use pip's cache
# Exit status: 0 when every locked wheel is installed at its version and imports; otherwise an ERROR line
#   on stderr and 2 usage, 3 lock or wheelhouse not readable or download failed, 4 no usable python/pip,
#   5 pip install failed (a hash mismatch: a wheel that is not the locked file; or a wheel missing for this
#   Python or platform), 6 import check.
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
  printf 'usage: %s LOCK_URI WHEELHOUSE_URI   (s3://bucket/key or local paths)\n' "$0" >&2
}

if [[ $# -ne 2 || -z "${1:-}" || -z "${2:-}" ]]; then
  usage
  die 2 "expected two arguments, the URIs of the lock and of the wheelhouse; got $#"
fi
readonly LOCK_URI=$1 WHEELHOUSE_URI=$2

case "$PYTHON" in
  /*) ;;
  *) die 2 "FRUITS_PYTHON must be an absolute path, got '$PYTHON'" ;;
esac

workdir=$(mktemp -d "${TMPDIR:-/tmp}/${SCRIPT_NAME}.XXXXXX")
chmod 755 "$workdir" # pip runs as root (sudo) and reads from here
trap 'rm -rf "$workdir"' EXIT

# fetch URI DEST WHAT: an s3:// object copied to DEST, or a local path echoed back; exit 3 on failure.
fetch() {
  local uri=$1 dest=$2 what=$3
  case "$uri" in
    s3://*)
      command -v aws >/dev/null 2>&1 || die 3 "the aws CLI is not on PATH: cannot download $uri"
      log "downloading the $what: $uri"
      aws s3 cp --only-show-errors "$uri" "$dest" ||
        die 3 "download failed: aws s3 cp $uri (check the key and the instance role's s3:GetObject)"
      fetched=$dest
      ;;
    *://*) die 3 "unsupported URI scheme in '$uri': use s3://... or a local path" ;;
    *)
      [[ -e "$uri" && -r "$uri" ]] || die 3 "$what not found or not readable: $uri"
      fetched=$uri
      ;;
  esac
}

# 1. The lock and the wheelhouse.
fetch "$LOCK_URI" "$workdir/requirements.lock" "lock"
lock=$fetched
[[ -f "$lock" && -s "$lock" ]] || die 3 "lock is empty or not a file: $LOCK_URI"
log "lock ($LOCK_URI): $(grep -cE '^[A-Za-z0-9]' "$lock") pinned packages, sha256 $(sha256sum "$lock" | cut -c1-64)"

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

fetch "$WHEELHOUSE_URI" "$workdir/wheelhouse.zip" "wheelhouse"
if [[ -d "$fetched" ]]; then
  wheels=$fetched
else
  wheels="$workdir/wheels"
  "$PYTHON" -m zipfile -e "$fetched" "$wheels" || die 3 "wheelhouse is not a readable zip: $WHEELHOUSE_URI"
  [[ "$fetched" == "$workdir/"* ]] && rm -f "$fetched" # the extracted copy is enough on a small root volume
fi
count=$(find "$wheels" -maxdepth 1 -name '*.whl' | wc -l)
((count > 0)) || die 3 "no wheel in the wheelhouse: $WHEELHOUSE_URI"
log "wheelhouse ($WHEELHOUSE_URI): $count wheels, $(du -sm "$wheels" | cut -f1) MB"

# 3. The lock, system-wide for that interpreter, from the wheelhouse only. pip checks every file against
#    the lock's hashes and skips what is already installed at the locked version.
pip_args=(install --disable-pip-version-check --progress-bar off --no-index --find-links "$wheels"
  --require-hashes -r "$lock")
if [[ "$PIP_NO_CACHE" == "1" ]]; then
  pip_args+=(--no-cache-dir)
fi
log "sudo $PYTHON -m pip ${pip_args[*]}"
pip_status=0
started=$SECONDS
# --isolated and PIP_CONFIG_FILE=/dev/null: no PIP_* variable and no pip.conf of the machine adds an index,
# find-links or constraints.
sudo env PIP_ROOT_USER_ACTION=ignore PIP_CONFIG_FILE=/dev/null "$PYTHON" -m pip --isolated "${pip_args[@]}" \
  2>&1 | tee "$workdir/pip.log" || pip_status=${PIPESTATUS[0]}
if [[ $pip_status -ne 0 ]]; then
  if grep -q "DO NOT MATCH THE HASHES" "$workdir/pip.log"; then
    die 5 "pip install failed (exit $pip_status): hash mismatch, a wheel in $WHEELHOUSE_URI is not the file \
the lock names (tampered or rebuilt): rebuild it with make wheelhouse; see pip's output above"
  fi
  die 5 "pip install failed (exit $pip_status) for $LOCK_URI: a locked wheel is missing from $WHEELHOUSE_URI \
or does not install for $("$PYTHON" --version 2>&1) on $(uname -m); see pip's output above"
fi
log "pip install done in $((SECONDS - started)) s"

# 4. Import check: each wheel of the wheelhouse, installed at its version, and its modules import.
log "import check"
check_status=0
TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg "$PYTHON" - "$wheels" <<'PY' || check_status=$?
import importlib
import importlib.metadata as md
import pathlib
import re
import sys
import time


def line(level, msg):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} [install_python_deps] {level} {msg}", file=sys.stderr if level == "ERROR" else sys.stdout,
          flush=True)


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(installed, wanted):
    if installed == wanted:  # the usual case; pip's packaging (which imports distutils) only if not
        return True
    try:
        from pip._vendor.packaging.version import Version  # pip is there: it just ran

        return Version(installed) == Version(wanted)
    except Exception:
        return installed == wanted


# A wheel's file name starts with its distribution and version: {name}-{version}(-{build})?-{tags}.whl
wheels = sorted((p.name.split("-")[0], p.name.split("-")[1]) for p in pathlib.Path(sys.argv[1]).glob("*.whl"))
# setuptools first: once another package has imported the standard library's distutils, importing
# setuptools fails (its distutils shim asserts), which would say nothing about the install.
wheels.sort(key=lambda wheel: canon(wheel[0]) != "setuptools")

modules_of = {}
for module, dists in md.packages_distributions().items():
    if module.startswith("_"):
        continue
    for dist in dists:
        modules_of.setdefault(canon(dist), []).append(module)

failures = 0
for name, wanted in wheels:
    text = f"{canon(name)}=={wanted}"
    try:
        installed = md.version(name)
    except md.PackageNotFoundError:
        line("ERROR", f"{text}: not installed")
        failures += 1
        continue
    if not same_version(installed, wanted):
        line("ERROR", f"{text}: installed version is {installed}")
        failures += 1
        continue
    candidates = sorted(set(modules_of.get(canon(name), [])))
    preferred = canon(name).replace("-", "_")
    modules = [preferred] if preferred in candidates else candidates
    if not modules:
        line("INFO", f"installed: {text} (no importable module)")
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an ImportError, or anything a broken package raises at import
            line("ERROR", f"import {module_name} failed ({text}): {type(exc).__name__}: {exc}")
            failures += 1
            continue
        version = getattr(module, "__version__", installed)
        line("INFO", f"import ok: {module_name} {version} ({text})")

if failures:
    line("ERROR", f"{failures} of {len(wheels)} locked packages failed the import check")
    sys.exit(1)
line("INFO", f"all {len(wheels)} locked packages import")
PY
if [[ $check_status -ne 0 ]]; then
  die 6 "import check failed for $PYTHON (exit $check_status): see the ERROR lines above"
fi
log "done: $PYTHON has every package of $LOCK_URI"
