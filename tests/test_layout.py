"""The package's shape: the algorithm never imports the course, no import cycles, heavy extras imported late.

Read from the source (ast), so a function-level import counts as much as a top-level one: the cycle
data -> rewards -> data that this test was written against hid inside a function.
"""
import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "sdpo_lite"
# The one import of the course by the algorithm layer: `sdpo_lite.rewards.__getattr__` forwards the course's reward
# names (`from sdpo_lite.rewards import code_execution_reward`, the name scripts written for 0.1 use), on first use.
ALLOWED_UPWARD = {("sdpo_lite.rewards", "__getattr__", "sdpo_lite.course.rewards")}
HEAVY_OPTIONAL = ("unsloth", "ipywidgets", "playwright")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """(imported module, enclosing function or None) for every import statement of one file."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Import):
                found.extend((alias.name, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                # `from sdpo_lite.course import rewards` imports the submodule sdpo_lite.course.rewards
                submodules = [f"{child.module}.{alias.name}" for alias in child.names
                              if (ROOT / f"{child.module}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()]
                found.extend((target, function) for target in submodules or [child.module])
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return found


def graph():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {(target, function) for target, function in imports(path) if target in modules}
    return modules, edges


def is_core(name):
    return not name.startswith("sdpo_lite.course")


def test_the_algorithm_never_imports_the_course():
    _, edges = graph()
    upward = {(src, fn, dst) for src, targets in edges.items() if is_core(src)
              for dst, fn in targets if not is_core(dst)}
    assert upward == ALLOWED_UPWARD


def test_no_import_cycles():
    _, edges = graph()
    deps = {src: {dst for dst, _ in targets if dst != src} for src, targets in edges.items()}
    state, cycles = {}, []

    def walk(node, path):
        state[node] = "open"
        for nxt in sorted(deps[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(deps):
        if start not in state:
            walk(start, [start])
    assert cycles == []


def test_heavy_extras_are_imported_inside_functions():
    """unsloth, ipywidgets, playwright: inside the functions that need them. The exception is `course.widgets`,
    the ipywidgets layer itself (its classes are VBoxes), which no module of the package imports."""
    modules, edges = graph()
    for name, path in modules.items():
        for target, function in imports(path):
            if target.split(".")[0] in HEAVY_OPTIONAL and name != "sdpo_lite.course.widgets":
                assert function is not None, f"{name} imports {target} at module level"
    assert not [src for src, targets in edges.items() for dst, _ in targets if dst == "sdpo_lite.course.widgets"]


def test_light_modules_import_without_trl_or_widgets():
    code = ("import sys; import sdpo_lite, sdpo_lite.rewards, sdpo_lite.reprompt, sdpo_lite.course.tasks, "
            "sdpo_lite.course.views, sdpo_lite.course.unsloth; "
            "print(sorted(m for m in ('trl', 'transformers', 'ipywidgets', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_of_earlier_releases_still_import():
    """What users and ../shared's checks import (the issue that moved the modules promised to keep them)."""
    from sdpo_lite import SDPOConfig, SDPOTrainer  # noqa: F401
    from sdpo_lite.course.rewards import code_execution_reward as course_reward
    from sdpo_lite.loss import distillation_loss  # noqa: F401
    from sdpo_lite.rewards import COURSE_REWARDS, code_execution_reward

    assert code_execution_reward is course_reward
    import sdpo_lite.course.rewards as course_rewards
    import sdpo_lite.rewards as contract

    assert all(getattr(contract, name) is getattr(course_rewards, name) for name in COURSE_REWARDS)
