"""requirements.txt is the one pin source: every other file that names versions must agree with it."""
import re
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

sys.path.insert(0, str(ROOT / "scripts"))
from install_env import read_pins, read_platform_pins  # noqa: E402

MAIN, NODEPS = read_pins()
PINS = {Requirement(p).name.lower(): p.split("==")[1] for p in MAIN + NODEPS}


def yaml_pins(path):
    """name -> version for every `- name==version` line (a tiny reader: no YAML library needed)."""
    return {m[1].lower(): m[2] for m in re.finditer(r"^\s*-\s*([A-Za-z0-9_.-]+)==([^\s#]+)", path.read_text(), re.M)}


def test_every_pin_is_exact():
    for line in MAIN + NODEPS + read_platform_pins():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^\s]*", line), f"requirements.txt: '{line}' is not an exact pin"


def test_platform_only_pins_stay_out_of_the_venv():
    """torchao (Colab's is too old for peft) and unsloth (GPU only) are for the setup cell, never `make setup`."""
    names = {Requirement(p).name.lower() for p in read_platform_pins()}
    assert names == {"torchao", "unsloth"}
    assert not names & set(PINS), "a platform-only pin leaked into install_env's lists"
    active = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert not any(line.startswith(("torchao", "unsloth")) for line in active), \
        "an uncommented platform pin: `pip install -r requirements.txt` would install it (unsloth upgrades torch)"


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_files_agree(path):
    found = yaml_pins(ROOT / path)
    for name, v in found.items():
        assert PINS.get(name) == v, f"{path} pins {name}=={v}, requirements.txt says {PINS.get(name)}"
    missing = set(PINS) - set(found) - {Requirement(p).name.lower() for p in NODEPS}
    assert not missing, f"{path} lacks {sorted(missing)}"


def test_binder_installs_the_nodeps_pins_from_the_pin_source():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "requirements.txt" in post and "--no-deps" in post


def test_pyproject_ranges_admit_the_pins():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S)[1]
    for raw in re.findall(r'"([^"]+)"', deps):
        req = Requirement(raw)
        pinned = PINS.get(req.name.lower())
        assert pinned is not None, f"pyproject depends on {req.name}, which requirements.txt does not pin"
        assert req.specifier.contains(Version(pinned), prereleases=True), f"{raw} excludes the pin {pinned}"


def test_unsloth_compatible_versions():
    """One environment for all notebooks: unsloth 2026.10.9 caps trl <= 1.15.0, transformers <= 5.17.0, ..."""
    assert Version(PINS["trl"]) <= Version("1.15.0") and Version(PINS["transformers"]) <= Version("5.17.0")
    assert Version(PINS["transformers"]) not in (Version("5.0.0"), Version("5.1.0"))
    assert Version(PINS["datasets"]) < Version("5") and Version(PINS["peft"]) >= Version("0.18")
    assert Version(PINS["torch"]) < Version("2.15")


def test_the_installed_environment_is_the_pinned_one():
    for name, want in PINS.items():
        try:
            got = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is pinned but not installed: run `make setup`")
        assert Version(got.split("+")[0]) == Version(want), f"{name} {got} installed, {want} pinned: run `make setup`"


def test_python_floor_is_what_every_pin_needs():
    """pyproject, the README and install_env promise one Python floor; every installed pin must accept it."""
    from importlib.metadata import metadata

    from packaging.specifiers import SpecifierSet

    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)"', text)[1]
    assert f"Python {floor}+" in (ROOT / "README.md").read_text()
    assert f">= {floor}" in (ROOT / "scripts" / "install_env.py").read_text()
    for name in PINS:
        needs = metadata(name).get("Requires-Python")
        if needs:
            assert SpecifierSet(needs).contains(f"{floor}.0"), f"{name} needs Python {needs}; our floor is {floor}"
