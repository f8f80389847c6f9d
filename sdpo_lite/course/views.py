"""See inside SDPO: teacher-vs-student distributions, teacher prompts and a rollout browser.

Three views, each in two forms:

* an interactive widget built from core ipywidgets only (`sdpo_lite.course.widgets`, which also has the
  `show_*` functions below), so it runs in JupyterLab, classic Notebook, VS Code and Colab without any custom
  widget manager;
* a static form (inline-styled HTML strings, matplotlib figures) that survives without a kernel: GitHub,
  nbviewer, `jupyter nbconvert --to html`.

    view = distribution_view(model, tok, record, teacher=trainer.teacher)   # the numbers (a dataclass)
    show_distributions(model, tok, record, teacher=trainer.teacher)         # the widget
    show_distributions(model, tok, record, teacher=trainer.teacher, static=True)   # the static form
    show_teacher_prompt(record)                                             # prompt vs teacher prompt
    browse_rollouts(trainer.last_rollouts)                                  # Dropdowns over a step's rollouts

The per-token numbers are the trainer's loss: `distillation_loss` on the full logits of the student on
[prompt | completion] and of the teacher on [teacher prompt | completion] (one record, so full logits are fine).
Colours are colour-blind safe: a cividis scale for the divergence, Okabe-Ito blue/orange for student/teacher.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
import unicodedata
from dataclasses import dataclass, field

import torch

__all__ = [
    "DistributionView", "distribution_view", "student_teacher_logits", "trainer_settings", "teaching_record",
    "token_strip_html", "distribution_figure", "distributions_html",
    "teacher_prompt_html", "rollout_html", "rollouts_html",
]

# Okabe-Ito (colour-blind safe): student blue, teacher orange, tail grey; span highlights as light tints.
STUDENT_COLOR = "#0072B2"
TEACHER_COLOR = "#E69F00"
TAIL_COLOR = "#999999"
DEMO_COLOR, DEMO_TINT = "#009E73", "#D2F0E6"  # bluish green
FEEDBACK_COLOR, FEEDBACK_TINT = "#D55E00", "#FBE0CC"  # vermillion
DIVERGENCE_CMAP = "cividis"  # sequential, perceptually uniform, colour-blind safe
# Token buttons get their text colour from a CSS class, not ButtonStyle.text_color: Colab keeps ipywidgets 7.7.1,
# whose ButtonStyle has only button_color and font_weight (text_color, text_decoration came in 8.0) and silently
# drops the rest, leaving the theme's text colour on dark cividis buttons. add_class and a <style> in the widget's
# header HTML work in 7 and 8 alike, whatever the theme.
TOKEN_CSS = "<style>.sdpo-dark-text{color:#000!important}.sdpo-light-text{color:#fff!important}</style>"
BOX_STYLE = ("font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.7;"
             "color:#111;background:#fff;padding:8px;border:1px solid #ddd;border-radius:4px")


# ----------------------------------------------------------------------------------------------------------------
# The numbers
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class DistributionView:
    """Student vs teacher along one completion. Position t is the prediction of completion token t.

    student_top[t] / teacher_top[t]: each side's own top-k as (token id, token string, probability), best first.
    student_tail[t] / teacher_tail[t]: 1 - the sum of those k probabilities (the mass the chart shows as one bar).
    teacher_on_student_top[t]: the teacher's probabilities of the student's top-k tokens (the loss's support).
    per_token_loss[t]: `distillation_loss(...).per_token` for this record (0 where the rollout has no teacher).
    """

    tokens: list[str]
    token_ids: list[int]
    per_token_loss: list[float]
    student_top: list[list[tuple[int, str, float]]]
    teacher_top: list[list[tuple[int, str, float]]]
    student_tail: list[float]
    teacher_tail: list[float]
    p_student: list[float]  # probability of the sampled token under each side
    p_teacher: list[float]
    teacher_on_student_top: list[list[float]] = field(default_factory=list)
    rank_student: list[int] = field(default_factory=list)  # 1 = the side's most likely token
    rank_teacher: list[int] = field(default_factory=list)
    has_teacher: bool = True
    settings: dict = field(default_factory=dict)  # alpha, topk, add_tail, temperature, k
    title: str = ""

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def loss(self) -> float:
        """The record's token-mean loss (what `sdpo/distill_loss` averages over a batch)."""
        return sum(self.per_token_loss) / max(len(self.per_token_loss), 1) if self.has_teacher else 0.0

    def argmax(self) -> int:
        """The position with the largest divergence (a good first place to look)."""
        return max(range(len(self)), key=self.per_token_loss.__getitem__) if len(self) else 0

    def _repr_html_(self) -> str:
        return distributions_html(self)


def trainer_settings(trainer) -> dict:
    """The keyword arguments that make the views use exactly the trainer's loss: teacher, alpha, topk, tail, tau."""
    c = trainer.sdpo
    return dict(teacher=trainer.teacher, alpha=c.alpha, topk=c.distillation_topk, add_tail=c.distillation_add_tail,
                temperature=trainer.temperature)


def _student_prompt_ids(tokenizer, prompt, chat_template_kwargs=None) -> list[int]:
    """Tokenise the dataset prompt as TRL's GRPOTrainer does (`_tokenize_prompts`)."""
    if isinstance(prompt, str):
        return list(tokenizer(text=prompt)["input_ids"])
    out = tokenizer.apply_chat_template(conversation=[prompt], add_generation_prompt=True, tokenize=True,
                                        return_dict=True, **(chat_template_kwargs or {}))
    return list(out["input_ids"][0])


def _completion_logits(causal_lm_or_teacher, prompt_ids, completion_ids, device):
    """Raw (1, T, V) fp32 logits predicting the completion tokens after `prompt_ids`."""
    from sdpo_lite.loss import lm_head_of
    from sdpo_lite.teacher import backbone_hidden_states

    T = len(completion_ids)
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)], dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        if hasattr(causal_lm_or_teacher, "hidden_states"):  # a sdpo_lite Teacher (EMA / frozen / live)
            hidden, head = causal_lm_or_teacher.hidden_states(ids, mask)
        else:
            hidden = backbone_hidden_states(causal_lm_or_teacher, ids, mask)
            head = lm_head_of(causal_lm_or_teacher)  # with the family's softcap / logit scale, as the trainer
        return head(hidden[:, -T - 1:-1]).float()


def student_teacher_logits(model, tokenizer, prompt, teacher_prompt: str | None, completion_ids, *, teacher=None,
                           chat_template_kwargs=None):
    """Raw (1, T, V) fp32 logits of student and teacher predicting `completion_ids`, as the trainer computes them.

    The student reads `prompt` (tokenised as TRL does); the teacher reads the rendered `teacher_prompt` text (None:
    the student's own prompt) with `teacher` (a `sdpo_lite.teacher.Teacher`) or, when None, the model itself."""
    from sdpo_lite.teacher import causal_lm_of, eval_mode

    tok = getattr(tokenizer, "tokenizer", tokenizer)
    device = next(model.parameters()).device
    student_ids = _student_prompt_ids(tok, prompt, chat_template_kwargs)
    teacher_ids = tok(teacher_prompt, add_special_tokens=False)["input_ids"] if teacher_prompt else student_ids
    lm = causal_lm_of(model)
    with eval_mode(lm):
        s_logits = _completion_logits(lm, student_ids, completion_ids, device)
        t_logits = _completion_logits(teacher if teacher is not None else lm, teacher_ids, completion_ids, device)
    return s_logits, t_logits


def distribution_view(model, tokenizer, record, *, teacher=None, k: int = 10, alpha: float = 0.5,
                      topk: int | None = 100, add_tail: bool = True, temperature: float = 1.0,
                      chat_template_kwargs=None) -> DistributionView:
    """Compute everything the distribution widget shows for one RolloutRecord. No widgets, no plotting.

    The student reads the record's prompt (tokenised as TRL does); the teacher reads `record.teacher_prompt`.
    `teacher` is a `sdpo_lite.teacher.Teacher` (e.g. `trainer.teacher`, the EMA weights) or None for "the same
    model is its own teacher". A record without a teacher prompt is shown against the student itself (loss 0).
    """
    from sdpo_lite.loss import distillation_loss

    tok = getattr(tokenizer, "tokenizer", tokenizer)
    completion_ids = [int(i) for i in (record.completion_ids or tok(record.completion, add_special_tokens=False)
                                       ["input_ids"])]
    if not completion_ids:
        raise ValueError("the record has an empty completion: nothing to show")
    has_teacher = bool(record.teacher_prompt)
    s_logits, t_logits = student_teacher_logits(model, tok, record.prompt, record.teacher_prompt, completion_ids,
                                                teacher=teacher, chat_template_kwargs=chat_template_kwargs)
    y = torch.tensor([completion_ids], device=s_logits.device)
    out = distillation_loss(s_logits, t_logits, y, torch.ones_like(y, dtype=torch.float), alpha=alpha, topk=topk,
                            add_tail=add_tail, temperature=temperature)
    per_token = out.per_token[0] if has_teacher else torch.zeros(len(completion_ids))

    p = torch.softmax(s_logits[0] / temperature, dim=-1)  # (T, V)
    q = torch.softmax(t_logits[0] / temperature, dim=-1)
    k = min(k, p.size(-1))
    decode = lambda i: tok.decode([int(i)])  # noqa: E731

    def tops(probs):
        values, ids = probs.topk(k, dim=-1)
        rows = [[(int(i), decode(i), float(v)) for v, i in zip(vs, is_)] for vs, is_ in zip(values, ids)]
        return rows, (1.0 - values.double().sum(-1)).clamp(min=0.0).tolist(), ids

    student_top, student_tail, s_ids = tops(p)
    teacher_top, teacher_tail, _ = tops(q)
    yy = y[0].unsqueeze(-1)
    return DistributionView(
        tokens=[decode(i) for i in completion_ids], token_ids=completion_ids,
        per_token_loss=[float(x) for x in per_token], student_top=student_top, teacher_top=teacher_top,
        student_tail=student_tail, teacher_tail=teacher_tail,
        p_student=p.gather(-1, yy).squeeze(-1).tolist(), p_teacher=q.gather(-1, yy).squeeze(-1).tolist(),
        teacher_on_student_top=q.gather(-1, s_ids).tolist(), has_teacher=has_teacher,
        rank_student=(p > p.gather(-1, yy)).sum(-1).add(1).tolist(),
        rank_teacher=(q > q.gather(-1, yy)).sum(-1).add(1).tolist(),
        settings=dict(alpha=alpha, topk=topk, add_tail=add_tail, temperature=temperature, k=k),
        title=f"group {record.group}, score {record.score:g}" + ("" if has_teacher else " (no teacher)"))


# A token that carries content (a digit, an operator, a bracket), not wording: where a teacher that read the
# feedback should disagree with the student, if it learned anything from it.
CONTENT_TOKEN = re.compile(r"[0-9+\-*/%=<>()\[\]]")


def teaching_record(model, tokenizer, records, *, success_threshold: float = 0.5, **view_kwargs):
    """The rollout of a step whose teacher-vs-student view teaches most, and its view: (record, view, why).

    Preference: a FAILED rollout that has a teacher and whose largest divergence falls on a content token (the
    wrong digit or operator), the largest such divergence first; else the failed rollout with a teacher and the
    largest divergence anywhere; else any rollout with a teacher; else the first. A passing rollout or one whose
    biggest disagreement is "answered" vs "solved" shows the machinery, not what feedback does.
    `view_kwargs` go to `distribution_view` (use `**trainer_settings(trainer)`).
    """
    if not records:
        raise ValueError("no rollouts to choose from")
    failed = [r for r in records
              if r.teacher_prompt and r.score < success_threshold and (r.completion_ids or r.completion)]
    views = [(r, distribution_view(model, tokenizer, r, **view_kwargs)) for r in failed]
    on_content = [(r, v) for r, v in views if len(v) and CONTENT_TOKEN.search(v.tokens[v.argmax()])]
    for pool, why in ((on_content, "a failed rollout whose largest disagreement is on a content token"),
                      (views, "a failed rollout with a teacher (its largest disagreement is on wording)")):
        if pool:
            record, view = max(pool, key=lambda rv: rv[1].per_token_loss[rv[1].argmax()])
            return record, view, why
    record = next((r for r in records if r.teacher_prompt), records[0])
    why = "no failed rollout had a teacher: " + ("a rollout with a teacher" if record.teacher_prompt else "no teacher")
    return record, distribution_view(model, tokenizer, record, **view_kwargs), why


# ----------------------------------------------------------------------------------------------------------------
# Static forms: HTML strings and matplotlib figures
# ----------------------------------------------------------------------------------------------------------------
def visible(token: str) -> str:
    """A token string with its whitespace made visible (for labels and buttons)."""
    if token == "":
        return "∅"
    token = token.replace("\n", "↵").replace("\t", "⇥").replace(" ", "␣")
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in token)


def _shown(token: str) -> str:
    """A token for the HTML strip: real spaces kept (white-space:pre), blank tokens and control characters made visible."""
    if not token.strip():
        return visible(token)
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in token)


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def _cmap():
    import matplotlib

    return matplotlib.colormaps[DIVERGENCE_CMAP]


def divergence_colors(values, vmax: float | None = None) -> list[tuple[str, str]]:
    """(background, text colour) per value on the cividis scale from 0 to vmax (default: the largest value)."""
    from matplotlib.colors import to_hex

    vmax = vmax if vmax is not None else max([v for v in values if math.isfinite(v)], default=0.0)
    cmap = _cmap()
    out = []
    for v in values:
        x = min(max(v / vmax, 0.0), 1.0) if vmax > 0 and math.isfinite(v) else 0.0
        r, g, b, _ = cmap(x)
        luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
        out.append((to_hex((r, g, b)), "#000000" if luminance > 0.5 else "#ffffff"))
    return out


def legend_html(vmax: float) -> str:
    from matplotlib.colors import to_hex

    stops = ",".join(to_hex(_cmap()(i / 8)) for i in range(9))
    return (f'<div style="display:flex;align-items:center;gap:6px;font-size:12px;color:#333;margin:4px 0">'
            f'<span>divergence 0</span><span style="display:inline-block;width:160px;height:10px;'
            f'background:linear-gradient(to right,{stops});border:1px solid #ccc"></span>'
            f'<span>{vmax:.3g}</span></div>')


def token_strip_html(view: DistributionView, selected: int | None = None) -> str:
    """The completion as a strip of tokens coloured by per-token divergence; `selected` gets an outline."""
    colors = divergence_colors(view.per_token_loss)
    cells = []
    for t, (tok, loss, (bg, fg)) in enumerate(zip(view.tokens, view.per_token_loss, colors)):
        outline = "outline:3px solid #D55E00;outline-offset:1px;" if t == selected else ""
        cells.append(f'<span data-pos="{t}" title="position {t}: divergence {loss:.4g}" style="background:{bg};'
                     f'color:{fg};white-space:pre;padding:1px 2px;margin:1px;border-radius:3px;{outline}">'
                     f'{esc(_shown(tok))}</span>')
    head = esc(view.title) + (f" &middot; mean divergence {view.loss:.4g}" if view.has_teacher else
                               " &middot; no teacher prompt: this rollout is masked out of the loss")
    return (f'<div style="{BOX_STYLE}"><div style="font-size:12px;color:#333">{head}</div>'
            f'{legend_html(max(view.per_token_loss, default=0.0))}<div>{"".join(cells)}</div></div>')


def _mpl_label(text: str) -> str:
    return visible(text).replace("$", r"\$")


def distribution_figure(view: DistributionView, position: int | None = None):
    """Side-by-side bar charts at one position: the student's and the teacher's top-k, plus the tail mass.

    The sampled token is hatched, outlined, bold and marked with an arrow (not by colour alone); when it is not in
    a side's top-k it gets an extra hatched row (its mass is part of the tail). Orange ticks on the student's bars
    show the teacher's probability of the same tokens (the support the loss compares on).
    Returns a matplotlib Figure (not attached to pyplot, so nothing leaks between slider moves).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = view.argmax() if position is None else position
    y = view.token_ids[t]
    k = view.settings.get("k", 10)
    fig = Figure(figsize=(9, 0.3 * (k + 2) + 1.9), dpi=100)
    axes = fig.subplots(1, 2, sharex=True)
    ranks = (view.rank_student[t] if view.rank_student else None, view.rank_teacher[t] if view.rank_teacher else None)
    sides = [("student: plain prompt", view.student_top[t], view.student_tail[t], STUDENT_COLOR, view.p_student[t],
              ranks[0]),
             ("teacher: teacher prompt", view.teacher_top[t], view.teacher_tail[t], TEACHER_COLOR, view.p_teacher[t],
              ranks[1])]
    for ax, (name, top, tail, color, p_y, rank) in zip(axes, sides):
        rows = [(_mpl_label(s) + ("  ◀ sampled" if i == y else ""), v, color, i == y) for i, s, v in top]
        if all(i != y for i, _, _ in top):
            rank_text = f"rank {rank}, " if rank else ""
            rows.append((f"◀ sampled {_mpl_label(view.tokens[t])} ({rank_text}in the tail)", p_y, color, True))
        rows.append(("(tail: all other tokens)", tail, TAIL_COLOR, False))
        bars = ax.barh(range(len(rows)), [r[1] for r in rows], color=[r[2] for r in rows], edgecolor="none")
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        for i, (_, v, _, _) in enumerate(rows):
            ax.text(min(v, 0.86) + 0.01, i, f"{v:.3f}", va="center", fontsize=7, color="#333333")
        for bar, tick, (_, _, _, sampled) in zip(bars, ax.get_yticklabels(), rows):
            if sampled:
                bar.set_hatch("///")
                bar.set_edgecolor("#000000")
                bar.set_linewidth(1.5)
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        ax.set_title(f"{name}\np(sampled) = {p_y:.3f}", fontsize=9, color=color if color != TEACHER_COLOR else "#8a5f00")
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    handles = [Patch(color=STUDENT_COLOR, label=f"student top-{k}"), Patch(color=TEACHER_COLOR, label=f"teacher top-{k}"),
               Patch(color=TAIL_COLOR, label="tail = 1 - sum(top-k)"),
               Patch(facecolor="white", edgecolor="black", hatch="///", label="sampled token")]
    if view.teacher_on_student_top:
        q = view.teacher_on_student_top[t]
        axes[0].scatter(q, range(len(q)), marker="|", s=120, color=TEACHER_COLOR, linewidths=2.5, zorder=3)
        handles.append(Line2D([], [], marker="|", linestyle="none", markersize=10, markeredgewidth=2.5,
                              color=TEACHER_COLOR, label="teacher's p of the student's tokens"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7.5, frameon=False)
    fig.suptitle(f"position {t}: token {visible(view.tokens[t])!r}".replace("$", r"\$") +
                 f"   divergence {view.per_token_loss[t]:.4g}", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def img_html(png: bytes, alt: str) -> str:
    return (f'<img alt="{esc(alt)}" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}"/>')


def distributions_html(view: DistributionView, position: int | None = None) -> str:
    """Static form of the distribution widget: the coloured token strip and the chart at one position (default:
    the largest divergence), the chart embedded as a PNG so the HTML is self-contained."""
    t = view.argmax() if position is None else position
    s = view.settings
    note = (f"alpha={s.get('alpha')}, support = student's top-{s.get('topk')}"
            f"{' + tail' if s.get('add_tail') else ''}, temperature {s.get('temperature')}; chart at position {t}")
    return (f'<div>{token_strip_html(view, t)}<div style="font-size:12px;color:#555;margin:2px 0">{esc(note)}</div>'
            f'{img_html(figure_png(distribution_figure(view, t)), f"student vs teacher at position {t}")}</div>')


# ---- the teacher prompt -----------------------------------------------------------------------------------------
def _marked(text: str, spans: dict) -> str:
    """Escape `text`, wrapping each span {name: (start, end)} in a <mark data-span=name>."""
    style = {"demonstration": (DEMO_TINT, DEMO_COLOR), "feedback": (FEEDBACK_TINT, FEEDBACK_COLOR)}
    pieces, pos = [], 0
    for name, (start, end) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        tint, color = style.get(name, ("#EEEEEE", "#333333"))
        pieces.append(esc(text[pos:start]))
        pieces.append(f'<mark data-span="{esc(name)}" title="inserted {esc(name)}" style="background:{tint};'
                      f'color:#111;border-bottom:2px solid {color};padding:0">{esc(text[start:end])}</mark>')
        pos = end
    pieces.append(esc(text[pos:]))
    return "".join(pieces)


def _conversation_html(prompt, user_html: str | None = None) -> str:
    """A prompt as role-labelled blocks; the last user message's body replaced by `user_html` when given."""
    from sdpo_lite.reprompt import last_user_text

    pre = "white-space:pre-wrap;word-break:break-word;margin:2px 0 6px 0"
    if isinstance(prompt, str):
        return f'<div style="{pre}">{user_html if user_html is not None else esc(prompt)}</div>'
    last = max((i for i, m in enumerate(prompt) if m.get("role") == "user"), default=-1)
    blocks = []
    for i, m in enumerate(prompt):
        body = user_html if (i == last and user_html is not None) else (
            esc(last_user_text([m])) if m.get("role") == "user" else esc(str(m.get("content", ""))))
        blocks.append(f'<div style="font-size:11px;color:#555;text-transform:uppercase">{esc(str(m.get("role")))}'
                      f'</div><div style="{pre}">{body}</div>')
    return "".join(blocks)


def teacher_prompt_html(record) -> str:
    """Original prompt (what the student reads) beside the teacher's prompt, inserted parts highlighted."""
    legend = (f'<span style="background:{DEMO_TINT};border-bottom:2px solid {DEMO_COLOR}">demonstration</span> '
              f'(a successful peer\'s answer) &nbsp; <span style="background:{FEEDBACK_TINT};border-bottom:2px solid '
              f'{FEEDBACK_COLOR}">feedback</span> (from the reward function)')
    notes = []
    if record.teacher_message is None:
        right = ('<div style="color:#555;font-style:italic">no teacher: no successful peer and no feedback, so this '
                 'rollout is masked out of the distillation loss</div>')
    else:
        right = _conversation_html(record.prompt, _marked(record.teacher_message, record.spans or {}))
        used = [name for name, flag in (("demonstration", record.demo_used), ("feedback", record.feedback_used)) if flag]
        notes.append("teacher got: " + " + ".join(used))
    if record.thinking_stripped:
        notes.append("thinking stripped: &lt;think&gt;...&lt;/think&gt; was removed from the demonstration")
    if getattr(record, "teacher_truncated", False):
        notes.append("teacher prompt truncated to max_reprompt_length")
    col = "flex:1 1 300px;min-width:0"
    head = "font-weight:bold;margin-bottom:4px"
    note_html = "".join(f'<div data-note style="font-size:12px;color:#333">&bull; {n}</div>' for n in notes)
    return (f'<div style="{BOX_STYLE}"><div style="font-size:12px;margin-bottom:6px">{legend}</div>'
            f'<div style="display:flex;gap:12px;flex-wrap:wrap">'
            f'<div style="{col}"><div style="{head};color:{STUDENT_COLOR}">student reads: the original prompt</div>'
            f'{_conversation_html(record.prompt)}</div>'
            f'<div style="{col}"><div style="{head};color:#8a5f00">teacher reads: the teacher prompt</div>{right}</div>'
            f'</div>{note_html}</div>')


def rollout_html(record) -> str:
    """One rollout: score, teacher kind, completion, feedback, then the teacher-prompt view."""
    def row(name, value):
        cell = "text-align:left;vertical-align:top;background:#fff;border:none;"
        return (f'<tr><td style="{cell}padding:1px 8px 1px 0;color:#555">{name}</td>'
                f'<td style="{cell}padding:1px 0;color:#111;white-space:pre-wrap;word-break:break-word">{value}</td></tr>')

    yes = lambda b: "yes" if b else "no"  # noqa: E731
    rows = (row("score", esc(f"{record.score:g}")) + row("demonstration", yes(record.demo_used)) +
            row("feedback used", yes(record.feedback_used)) +
            row("completion", esc(record.completion)) +
            row("feedback", esc(record.feedback) if record.feedback else '<i style="color:#777">none</i>'))
    return (f'<div style="{BOX_STYLE};margin-bottom:6px"><table style="border-collapse:collapse;font-size:13px;'
            f'color:#111">{rows}</table></div>{teacher_prompt_html(record)}')


def rollouts_html(records) -> str:
    """Static form of the rollout browser: every rollout, grouped, each in a collapsible section."""
    parts = []
    for i, r in enumerate(records):
        parts.append(f'<details style="margin:4px 0"><summary style="cursor:pointer">{esc(option_label(i, r))}'
                     f'</summary>{rollout_html(r)}</details>')
    return f'<div>{"".join(parts)}</div>'


def option_label(i: int, r) -> str:
    return f"rollout {i} (group {r.group}): score {r.score:g} [{r.teacher_kind}]"
