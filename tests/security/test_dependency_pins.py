"""Finding 11 of issue 17 (loose pins): `make setup` installs only files whose sha256 is in
requirements.lock, every requirement of setup.cfg has an upper bound, and the lock satisfies
setup.cfg (so a refreshed lock cannot drift outside the tested ranges)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's continuation-joined lines."""
    text = LOCK.read_text().replace("\\\n", " ")
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        first, *options = line.split()
        pin = PIN.match(first)
        assert pin, f"not pinned exactly: {line}"
        assert options and all(HASH.match(option) for option in options), f"without sha256: {first}"
        found[canonicalize_name(pin["name"])] = (pin["version"], options)
    return found


def _setup_requirements() -> list[Requirement]:
    conf = configparser.ConfigParser()
    conf.read(ROOT / "setup.cfg")
    values = [conf.get("options", "install_requires"),
              *(conf.get("options.extras_require", extra) for extra in ("embedded", "dev"))]
    return [Requirement(line.strip()) for value in values for line in value.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_every_locked_package_is_pinned_to_one_version_with_its_hash() -> None:
    locked = _locked()
    assert len(locked) > 30
    assert {"setuptools", "wheel", "pip"} <= set(locked)  # the build and the installer, too


@pytest.mark.parametrize("requirement", _setup_requirements(), ids=str)
def test_every_requirement_is_locked_within_its_range(requirement: Requirement) -> None:
    locked = _locked()
    name = canonicalize_name(requirement.name)
    assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
    assert requirement.specifier.contains(locked[name][0], prereleases=True), \
        f"{name} {locked[name][0]} is outside {requirement.specifier}"
    for extra in requirement.extras:  # psycopg[binary] brings psycopg-binary
        assert canonicalize_name(f"{requirement.name}-{extra}") in locked


@pytest.mark.parametrize("requirement", _setup_requirements(), ids=str)
def test_every_requirement_has_an_upper_bound(requirement: Requirement) -> None:
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), \
        f"{requirement} has no upper bound"


def test_pymupdf_stays_below_2() -> None:
    pymupdf = next(r for r in _setup_requirements() if r.name == "pymupdf")
    assert str(pymupdf.specifier) in ("<2,>=1.26", ">=1.26,<2")


def test_make_setup_installs_from_the_lock_with_hash_checking() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile
    assert "--no-deps" in makefile  # the project itself resolves nothing outside the lock
    assert re.search(r"^lock:", makefile, re.MULTILINE)
