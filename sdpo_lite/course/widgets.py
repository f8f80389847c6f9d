"""The views of `views` in a notebook: ipywidgets (the teacher-vs-student explorer, the rollout browser), or with
static=True their HTML forms, which survive without a kernel (GitHub, nbviewer).

    show_distributions(model, tok, record, **trainer_settings(trainer))   # the widget
    show_distributions(model, tok, record, static=True)                   # the static form
    show_teacher_prompt(record)                                           # prompt vs teacher prompt
    browse_rollouts(trainer.last_rollouts)                                # Dropdowns over a step's rollouts

Core ipywidgets only (IntSlider, Dropdown, Button, HTML, VBox/HBox), so they run in JupyterLab, classic Notebook,
VS Code and Colab (ipywidgets 7.7.1) without a custom widget manager. This is the one module that imports ipywidgets
(at its top: the classes are VBoxes); `views` and the rest of the package import without it.
"""
from __future__ import annotations

import ipywidgets as w

from sdpo_lite.course.views import (STUDENT_COLOR, TOKEN_CSS, DistributionView, distribution_figure, distribution_view,
                                    distributions_html, divergence_colors, esc, figure_png, img_html, legend_html,
                                    option_label, rollout_html, rollouts_html, teacher_prompt_html,
                                    teaching_record, token_strip_html, trainer_settings, visible)

__all__ = ["DistributionsWidget", "RolloutBrowser", "show_distributions", "show_teaching_rollout",
           "show_teacher_prompt", "browse_rollouts", "trainer_settings"]


class DistributionsWidget(w.VBox):
    """The widget (an ipywidgets VBox): clickable coloured tokens, a slider over positions, the student/teacher chart.

    Parts: `.slider` (IntSlider), `.buttons` (one per token; a click moves the slider), `.info` (HTML: token and
    probabilities) and `.chart` (HTML holding the chart as an <img>; every slider move re-renders it).
    """

    MAX_BUTTONS = 256  # longer completions get a plain HTML strip instead of one button per token

    def __init__(self, view: DistributionView):
        self.view = view
        self._png: dict[int, bytes] = {}
        T = len(view)
        self.slider = w.IntSlider(value=view.argmax(), min=0, max=max(T - 1, 0), step=1, description="position",
                                  continuous_update=False, layout=w.Layout(width="520px"))
        self.info = w.HTML()
        self.chart = w.HTML()
        self.strip = w.HTML()  # used when there are too many tokens for buttons
        self.buttons = []
        colors = divergence_colors(view.per_token_loss)
        if T <= self.MAX_BUTTONS:
            for t, (tok, (bg, fg)) in enumerate(zip(view.tokens, colors)):
                b = w.Button(description=visible(tok), tooltip=f"position {t}: divergence {view.per_token_loss[t]:.4g}",
                             layout=w.Layout(width="auto", height="26px", margin="1px", padding="0 4px"))
                b.style.button_color = bg
                b.add_class("sdpo-light-text" if fg == "#ffffff" else "sdpo-dark-text")
                b.on_click(lambda _b, t=t: setattr(self.slider, "value", t))
                self.buttons.append(b)
            tokens = w.Box(self.buttons, layout=w.Layout(display="flex", flex_flow="row wrap", align_items="center"))
        else:
            tokens = self.strip
        head = w.HTML(f'{TOKEN_CSS}<div style="font-size:13px">{esc(view.title)}'
                      + (f" &middot; mean divergence {view.loss:.4g}" if view.has_teacher else
                         " &middot; no teacher prompt: masked out of the loss") + "</div>"
                      + legend_html(max(view.per_token_loss, default=0.0)))
        super().__init__([head, tokens, self.slider, self.info, self.chart])
        self.slider.observe(self._update, names="value")
        self._update()

    def png(self, t: int) -> bytes:
        if t not in self._png:
            self._png[t] = figure_png(distribution_figure(self.view, t))
        return self._png[t]

    def _update(self, change=None):
        t = self.slider.value
        v = self.view
        for i, b in enumerate(self.buttons):
            b.style.font_weight = "bold" if i == t else ""  # bold + an outline (not colour alone) mark the selection
            b.layout.border = "2px solid #D55E00" if i == t else ""
        if not self.buttons:
            self.strip.value = token_strip_html(v, t)
        self.info.value = (f'<span style="font-size:13px">token <code>{esc(repr(v.tokens[t]))}</code> &middot; '
                           f'divergence {v.per_token_loss[t]:.4g} &middot; '
                           f'<span style="color:{STUDENT_COLOR}">p_student = {v.p_student[t]:.3f}</span> &middot; '
                           f'<span style="color:#8a5f00">p_teacher = {v.p_teacher[t]:.3f}</span></span>')
        self.chart.value = img_html(self.png(t), f"student vs teacher at position {t}")


class RolloutBrowser(w.VBox):
    """An ipywidgets VBox: Dropdowns over a step's rollouts (group, then rollout) and the selected rollout's details.

    With `model` and `tokenizer`, a "teacher vs student" widget for the selected rollout appears below
    (computed on selection; pass `**trainer_settings(trainer)` through `distribution_kwargs`).
    """

    def __init__(self, records, model=None, tokenizer=None, **distribution_kwargs):
        if not records:
            raise ValueError("no rollouts to browse (train at least one step: trainer.last_rollouts is empty)")
        self.records = list(records)
        self.model, self.tokenizer, self.kwargs = model, tokenizer, distribution_kwargs
        groups = sorted({r.group for r in self.records})

        def group_label(g):
            members = [r for r in self.records if r.group == g]
            ok = sum(1 for r in members if r.demo_used or r.feedback_used)
            return f"group {g} ({len(members)} rollouts, {ok} with a teacher)"

        self.group = w.Dropdown(options=[(group_label(g), g) for g in groups], description="group")
        self.rollout = w.Dropdown(description="rollout")
        self.details = w.HTML()
        self.distributions = w.VBox([])
        super().__init__([w.HBox([self.group, self.rollout]), self.details, self.distributions])
        self._switching = False
        self.group.observe(self._group_changed, names="value")
        self.rollout.observe(self._rollout_changed, names="value")
        self._group_changed()

    def _group_changed(self, change=None):
        options = [(option_label(i, r), i) for i, r in enumerate(self.records) if r.group == self.group.value]
        self._switching = True
        try:
            self.rollout.options = options
            self.rollout.value = options[0][1]
        finally:
            self._switching = False
        self._rollout_changed()

    def _rollout_changed(self, change=None):
        if self._switching or self.rollout.value is None:
            return
        record = self.records[self.rollout.value]
        self.details.value = rollout_html(record)
        if self.model is not None and self.tokenizer is not None:
            view = distribution_view(self.model, self.tokenizer, record, **self.kwargs)
            self.distributions.children = [DistributionsWidget(view)]


# ----------------------------------------------------------------------------------------------------------------
# Showing them: the widget, or with static=True the HTML form
# ----------------------------------------------------------------------------------------------------------------
def _static(html_text: str):
    from IPython.display import HTML

    return HTML(html_text)


def show_distributions(model, tokenizer, record, *, teacher=None, k: int = 10, alpha: float = 0.5,
                       topk: int | None = 100, add_tail: bool = True, temperature: float = 1.0, static: bool = False,
                       position: int | None = None, chat_template_kwargs=None):
    """Teacher vs student along one rollout: the widget (default) or, with static=True, its HTML form.

    Use `**trainer_settings(trainer)` to pass the trainer's EMA teacher, alpha, top-k, tail and temperature.
    """
    view = distribution_view(model, tokenizer, record, teacher=teacher, k=k, alpha=alpha, topk=topk,
                             add_tail=add_tail, temperature=temperature, chat_template_kwargs=chat_template_kwargs)
    return _show_view(view, static, position)


def _show_view(view: DistributionView, static: bool, position: int | None):
    """A computed view as its static HTML form or as the widget, opened at `position`."""
    if static:
        return _static(distributions_html(view, position))
    widget = DistributionsWidget(view)
    if position is not None:
        widget.slider.value = position
    return widget


def show_teaching_rollout(model, trainer, records, *, static: bool = True):
    """The rollout of `records` that teaches most (`views.teaching_record`), shown at its largest disagreement.

    Prints why it was chosen and where the disagreement is, displays the view (its static HTML form by default) and
    returns (record, view), so a later cell can open the widget on the same rollout:
    `show_distributions(..., record, position=view.argmax())`."""
    from IPython.display import display

    settings = trainer_settings(trainer)
    record, view, why = teaching_record(model, trainer.processing_class, records, **settings)
    print(f"shown: {why}; the largest disagreement is at token {view.argmax()}, {view.tokens[view.argmax()]!r}")
    display(_show_view(view, static, view.argmax()))  # the view teaching_record computed, not a second pass
    return record, view


def show_teacher_prompt(record, *, static: bool = False):
    """The original prompt beside the teacher prompt (an HTML widget, or with static=True a plain HTML display)."""
    text = teacher_prompt_html(record)
    return _static(text) if static else w.HTML(text)


def browse_rollouts(records, model=None, tokenizer=None, *, static: bool = False, **distribution_kwargs):
    """Browse `trainer.last_rollouts`: a widget with group and rollout Dropdowns, or with static=True all of them
    as collapsible HTML sections."""
    if static:
        return _static(rollouts_html(records))
    return RolloutBrowser(records, model, tokenizer, **distribution_kwargs)
