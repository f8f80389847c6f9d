"""The course around SDPO: everything the notebooks use that is not the algorithm. It imports `sdpo_lite`'s
algorithm modules; they never import it.

    tasks.py      the tasks (addition, parity, code): versioned JSONL data, answer parsers, checkers
    rewards.py    the tasks' reward functions: a score and the feedback the self-teacher reads
    sandbox.py    running model-written code in a separate, limited process (never in ours): process control
    harness.py    the child side of the sandbox, run as a script: limits, audit hook, one JSON line per test
    judge.py      comparing the child's results with the tests, by value, and wording the feedback
    models.py     the models: tiny (tests), SmolLM2-135M shipped on PyPI (offline), any Hub model; LoRA adapters
    evaluate.py   greedy held-out accuracy, and the numbers a notebook records
    recipes.py    profiles (cpu / lowmem / gpu / tiny) and `train_run`: one training run in one call
    reports.py    tables and plots of finished runs; the data-flow figure
    rollouts.py   one group of rollouts outside training: sample, score, build teachers, next-token views
    views.py      teacher-vs-student distributions, teacher prompts, rollout details: HTML and figures
    widgets.py    the same views as ipywidgets (imported only when a widget is shown)
    platform.py   Colab / Kaggle / Binder / local: detection, badges, memory limits, the setup cell's facts
    unsloth.py    Unsloth's 4-bit QLoRA when usable, the same LoRA recipe with PEFT otherwise
"""
