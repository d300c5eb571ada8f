"""The locked runtime: locks current with requirements.in, the venv running them, the wheelhouse checks
the app makes at synth, and the weights resolved once on the deploying machine."""

from __future__ import annotations

import functools
import http.server
import importlib.metadata
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from stacks import PROJECT_ROOT
from stacks import weights as weights_module
from stacks.runtime_deps import (
    MANIFEST,
    PLATFORMS,
    REQUIREMENTS_IN,
    LockError,
    parse_lock,
    read_lock,
    sha256_file,
    stale_reason,
    verify_wheelhouse,
)
from tests.infra.conftest import build_app
from tests.runtime_support import LOCAL_PLATFORM, ensure_wheelhouse

# --- the locks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(PLATFORMS))
def test_lock_is_current_with_requirements_in(arch: str):
    reason = stale_reason(PLATFORMS[arch])
    assert reason is None, f"{reason}: run `make lock`"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "spark_job").mkdir()
    for name in ("requirements.in", "requirements.x86_64.lock", "requirements.aarch64.lock"):
        shutil.copy(PROJECT_ROOT / "spark_job" / name, tmp_path / "spark_job" / name)
    return tmp_path


def test_an_edited_requirements_in_makes_the_lock_stale(project: Path):
    requirements = project / REQUIREMENTS_IN
    assert stale_reason(PLATFORMS["x86_64"], project) is None
    requirements.write_text(requirements.read_text() + "\n# only a comment\n")
    assert "compiled from another spark_job/requirements.in" in str(
        stale_reason(PLATFORMS["x86_64"], project)
    )


def test_a_lock_that_does_not_satisfy_requirements_in_is_stale(project: Path):
    """Even with the recorded input hash patched to match, a pin outside the .in's range is caught."""
    requirements = project / REQUIREMENTS_IN
    requirements.write_text(requirements.read_text().replace("pillow==12.1.1", "pillow==12.2.0"))
    lock = PLATFORMS["x86_64"].lock_path(project)
    text = lock.read_text()
    recorded = text.split("# input sha256: ", 1)[1][:64]
    lock.write_text(text.replace(recorded, sha256_file(requirements)))
    reason = stale_reason(PLATFORMS["x86_64"], project)
    assert reason == (
        "requirements.x86_64.lock pins pillow==12.1.1, spark_job/requirements.in wants pillow==12.2.0"
    )
    requirements.write_text(requirements.read_text() + "ai-edge-litert==2.3.0\n")
    lock.write_text(lock.read_text().replace(sha256_file(project / REQUIREMENTS_IN), "0" * 64))
    assert "compiled from another" in str(stale_reason(PLATFORMS["x86_64"], project))


@pytest.mark.parametrize("arch", sorted(PLATFORMS))
def test_every_locked_package_is_pinned_with_hashes(arch: str):
    locked = read_lock(PLATFORMS[arch])
    assert len(locked) >= 40  # the whole closure, not only the direct needs
    for package in locked.values():
        assert package.hashes, package.name
        assert all(len(h) == 64 for h in package.hashes)
    tensorflow = "tensorflow-cpu" if arch == "x86_64" else "tensorflow"  # no aarch64 tensorflow-cpu wheel
    assert locked[tensorflow].version == "2.21.0"


def test_the_locks_differ_only_by_the_tensorflow_distribution():
    x86, arm = ({n: p.version for n, p in read_lock(PLATFORMS[a]).items()} for a in ("x86_64", "aarch64"))
    assert x86.pop("tensorflow-cpu") == arm.pop("tensorflow")
    assert x86 == arm


def test_parse_lock_refuses_unpinned_or_unhashed_lines():
    with pytest.raises(LockError, match="not an exact pin"):
        parse_lock("numpy>=2 --hash=sha256:" + "a" * 64 + "\n")
    with pytest.raises(LockError, match="no --hash"):
        parse_lock("numpy==2.4.6\n")
    parsed = parse_lock("numpy==2.4.6 \\\n    --hash=sha256:" + "b" * 64 + "\n    # via pandas\n")
    assert parsed["numpy"].version == "2.4.6" and parsed["numpy"].hashes == {"b" * 64}


def test_the_venv_runs_the_locked_versions():
    """make venv and .ci/run install the lock with --require-hashes (again after the tools): the tests run
    what the nodes install."""
    locked = read_lock(LOCAL_PLATFORM)
    # The first distribution on sys.path, the one `import` uses: setuptools appends its own _vendor folder
    # (older packaging and wheel) to sys.path once something imports it.
    installed = {name: importlib.metadata.version(name) for name in locked}
    wrong = {n: (p.version, installed[n]) for n, p in locked.items() if installed[n] != p.version}
    assert wrong == {}, "locked vs installed; run `make venv`"


# --- the wheelhouse, as the app checks it at synth -------------------------------------------------------


@pytest.fixture
def linked_wheelhouse(tmp_path: Path) -> Path:
    """The real wheelhouse's wheels, linked, and a copy of its manifest (to be edited)."""
    real = ensure_wheelhouse()
    copy = tmp_path / "wheelhouse"
    copy.mkdir()
    for wheel in real.glob("*.whl"):
        (copy / wheel.name).symlink_to(wheel)
    shutil.copy(real / MANIFEST, copy / MANIFEST)
    return copy


def test_the_real_wheelhouse_holds_one_locked_wheel_per_package():
    house = verify_wheelhouse(LOCAL_PLATFORM, ensure_wheelhouse())
    assert house.wheel_count == len(read_lock(LOCAL_PLATFORM))
    manifest = json.loads((house.path / MANIFEST).read_text())
    locked = read_lock(LOCAL_PLATFORM)
    for name, entry in manifest["wheels"].items():
        assert name.endswith(".whl")
        assert entry["sha256"] in locked[canonicalize_name(name.split("-")[0])].hashes


def test_a_wheelhouse_of_another_lock_is_refused(linked_wheelhouse: Path):
    manifest = json.loads((linked_wheelhouse / MANIFEST).read_text())
    manifest["lockSha256"] = "0" * 64
    (linked_wheelhouse / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(LockError, match=r"built from another lock: run `make wheelhouse ARCH=x86_64`"):
        verify_wheelhouse(LOCAL_PLATFORM, linked_wheelhouse)


def test_a_missing_or_replaced_wheel_is_refused(linked_wheelhouse: Path):
    wheel = sorted(linked_wheelhouse.glob("numpy-*.whl"))[0]
    wheel.unlink()
    with pytest.raises(LockError, match=rf"{wheel.name} is missing or changed"):
        verify_wheelhouse(LOCAL_PLATFORM, linked_wheelhouse)
    wheel.write_bytes(b"not the locked file")
    with pytest.raises(LockError, match=rf"{wheel.name} is missing or changed"):
        verify_wheelhouse(LOCAL_PLATFORM, linked_wheelhouse)


def test_a_wheel_outside_the_lock_is_refused(linked_wheelhouse: Path):
    manifest = json.loads((linked_wheelhouse / MANIFEST).read_text())
    manifest["wheels"]["extra-1.0-py3-none-any.whl"] = {"sha256": "1" * 64, "size": 1}
    (linked_wheelhouse / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(LockError, match=r"extra-1.0-py3-none-any.whl in .* is not in the lock"):
        verify_wheelhouse(LOCAL_PLATFORM, linked_wheelhouse)


def test_synth_without_a_wheelhouse_names_the_command(tmp_path: Path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    with pytest.raises(LockError, match=r"no wheelhouse for x86_64 in .*: run `make wheelhouse ARCH=x86_64`"):
        build_app(tmp_path / "cdk.out", {"wheelhouseDir": str(empty)})


# --- the weights, resolved once on the deploying machine --------------------------------------------------


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTP server on loopback serving a weights file, recording each request path."""
    served = tmp_path / "served"
    served.mkdir()
    name = weights_module.imagenet_file_name(160)
    (served / name).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served / name, requests
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_imagenet_is_downloaded_once_and_its_sha256_recorded(weights_server, tmp_path: Path):
    base_url, original, requests = weights_server
    cache = tmp_path / "cache"
    first = weights_module.resolve_imagenet(160, local_file=None, cache_dir=cache, base_url=base_url)
    assert first.path.read_bytes() == original.read_bytes()
    assert first.sha256 == sha256_file(original)
    assert (cache / (first.path.name + ".sha256")).read_text().split()[0] == first.sha256
    assert first.origin == base_url + first.path.name
    again = weights_module.resolve_imagenet(160, local_file=None, cache_dir=cache, base_url=base_url)
    assert again == first
    assert len(requests) == 1, requests  # the second synth used the cache

    first.path.write_bytes(b"changed after download")
    with pytest.raises(weights_module.WeightsError, match="does not match the sha256 recorded"):
        weights_module.resolve_imagenet(160, local_file=None, cache_dir=cache, base_url=base_url)


def test_a_failed_download_says_how_to_give_a_local_file(weights_server, tmp_path: Path):
    base_url, _, _ = weights_server
    cache = tmp_path / "cache"
    with pytest.raises(weights_module.WeightsError, match=r"-c weightsFile=path/to/weights.h5"):
        weights_module.resolve_imagenet(96, local_file=None, cache_dir=cache, base_url=base_url)
    assert list(cache.iterdir()) == []  # no partial file left behind


def test_a_local_weights_file_is_used_as_given(tmp_path: Path):
    local = tmp_path / "w.h5"
    local.write_bytes(b"\x89HDF weights")
    resolved = weights_module.resolve_imagenet(224, local_file=local, cache_dir=tmp_path / "c", base_url="x")
    assert (resolved.path, resolved.sha256, resolved.origin) == (local, sha256_file(local), "local file")


def test_graviton_instance_types_ask_for_the_aarch64_wheelhouse(tmp_path: Path):
    graviton = {"architecture": "arm64"}
    with pytest.raises(LockError, match=r"built from another lock: run `make wheelhouse ARCH=aarch64`"):
        build_app(tmp_path / "cdk.out", {**graviton, "wheelhouseDir": str(ensure_wheelhouse())})
