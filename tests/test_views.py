"""sdpo_lite.course.views and .widgets: the numbers behind the views are the trainer's loss, the HTML is exact and
escaped, widgets react."""
from html.parser import HTMLParser

import pytest
import torch
from conftest import tiny_trainer

from sdpo_lite import SDPOConfig
from sdpo_lite.course import views, widgets
from sdpo_lite.loss import distillation_loss
from sdpo_lite.reprompt import RolloutRecord, build_teacher_message


def half_reward(prompts, completions, **kwargs):
    """Group 0 (rollouts 0, 1) succeeds, so each is the other's demonstration; group 1 fails, so each reads its own
    feedback, with characters HTML must escape. (A success's own feedback never reaches a teacher.)"""
    return [{"score": float(i < 2), "feedback": f"rollout {i}: <b>{'right' if i < 2 else 'wrong'}</b> & co"}
            for i in range(len(completions))]


@pytest.fixture(scope="module")
def trainer():
    """One SDPO step on the tiny model: 2 groups x 2 rollouts, so records with a demonstration and with feedback."""
    t = tiny_trainer(half_reward, sdpo=SDPOConfig(distillation_topk=20), num_generations=2, max_steps=1)
    t.train()
    assert len(t.last_rollouts) == 4 and len({r.group for r in t.last_rollouts}) == 2
    return t


def full_logits(model, tok, prompt_ids, completion_ids):
    """Independent reference: the plain forward pass's logits predicting the completion tokens."""
    T = len(completion_ids)
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    with torch.no_grad():
        return model(input_ids=ids).logits[:, -T - 1:-1].float()


def student_ids(tok, prompt):
    return tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]


@pytest.mark.parametrize("which", range(4))
def test_per_token_numbers_are_the_trainers_loss(trainer, which):
    """With trainer.teacher (the EMA copy): per_token_loss == distillation_loss(...).per_token on full logits."""
    record = trainer.last_rollouts[which]
    tok, model, settings = trainer.processing_class, trainer.model, views.trainer_settings(trainer)
    view = views.distribution_view(model, tok, record, **settings)
    y = record.completion_ids
    s = full_logits(model, tok, student_ids(tok, record.prompt), y)
    t = full_logits(trainer.teacher.module, tok, tok(record.teacher_prompt, add_special_tokens=False)["input_ids"], y)
    ref = distillation_loss(s, t, torch.tensor([y]), torch.ones(1, len(y)), alpha=settings["alpha"],
                            topk=settings["topk"], add_tail=settings["add_tail"], temperature=settings["temperature"])
    assert view.tokens == [tok.decode([i]) for i in y] and view.token_ids == y
    torch.testing.assert_close(torch.tensor(view.per_token_loss), ref.per_token[0], rtol=1e-4, atol=1e-7)
    assert view.loss == pytest.approx(ref.loss.item(), rel=1e-4, abs=1e-8)
    # the sampled token's probabilities and the student's top-k come from the same logits
    p = torch.softmax(s[0], -1)
    assert view.p_student == pytest.approx(p[range(len(y)), y].tolist(), rel=1e-5)
    assert [i for i, _, _ in view.student_top[0]] == p[0].topk(10).indices.tolist()


def test_same_model_is_the_teacher_without_one(trainer):
    """teacher=None: the same network reads the teacher prompt; other alpha/topk/temperature are honoured."""
    record, tok, model = trainer.last_rollouts[1], trainer.processing_class, trainer.model
    view = views.distribution_view(model, tok, record, alpha=1.0, topk=5, add_tail=False, temperature=0.7, k=3)
    y = record.completion_ids
    s = full_logits(model, tok, student_ids(tok, record.prompt), y)
    t = full_logits(model, tok, tok(record.teacher_prompt, add_special_tokens=False)["input_ids"], y)
    ref = distillation_loss(s, t, torch.tensor([y]), torch.ones(1, len(y)), alpha=1.0, topk=5, add_tail=False,
                            temperature=0.7)
    torch.testing.assert_close(torch.tensor(view.per_token_loss), ref.per_token[0], rtol=1e-4, atol=1e-7)
    assert all(len(row) == 3 for row in view.student_top + view.teacher_top)


def test_tail_is_one_minus_the_top_k(trainer):
    view = views.distribution_view(trainer.model, trainer.processing_class, trainer.last_rollouts[0],
                                 **views.trainer_settings(trainer))
    for t in range(len(view)):
        for top, tail in ((view.student_top[t], view.student_tail[t]), (view.teacher_top[t], view.teacher_tail[t])):
            assert tail == pytest.approx(1.0 - sum(p for _, _, p in top), abs=1e-6)
            assert all(a[2] >= b[2] for a, b in zip(top, top[1:]))  # best first
    # ... and the chart's last bar on each side is that tail
    t = 2
    fig = views.distribution_figure(view, t)
    student_ax, teacher_ax = fig.axes[:2]
    assert student_ax.patches[-1].get_width() == pytest.approx(view.student_tail[t])
    assert teacher_ax.patches[-1].get_width() == pytest.approx(view.teacher_tail[t])
    assert student_ax.get_yticklabels()[-1].get_text().startswith("(tail")


class Marks(HTMLParser):
    """Collects the (unescaped) text inside each <mark data-span=...>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.spans, self._open = {}, None

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self._open = dict(attrs)["data-span"]
            self.spans[self._open] = ""

    def handle_endtag(self, tag):
        if tag == "mark":
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.spans[self._open] += data


def marks_of(html_text):
    parser = Marks()
    parser.feed(html_text)
    return parser.spans


def test_teacher_prompt_highlights_exactly_the_inserted_text(trainer):
    kinds = set()
    for r in trainer.last_rollouts:
        expected = {name: r.teacher_message[slice(*span)] for name, span in r.spans.items()}
        assert expected  # every rollout here has a teacher
        assert marks_of(views.teacher_prompt_html(r)) == expected
        if r.feedback_used:
            assert expected["feedback"] == r.feedback
        kinds.add((r.demo_used, r.feedback_used))
    assert {(True, False), (False, True)} <= kinds  # both kinds were checked


def test_teacher_prompt_escapes_and_notes():
    prompt = [{"role": "system", "content": "Be <brief>."}, {"role": "user", "content": "2 < 3 & 4 > 1?"}]
    demo, fb = "<script>alert(1)</script> yes", "wrong & <i>late</i>"
    message, spans = build_teacher_message("2 < 3 & 4 > 1?", demo, fb, SDPOConfig())
    record = RolloutRecord(prompt=prompt, completion="<no>", score=0.0, feedback=fb, group=3, teacher_message=message,
                           teacher_prompt=message, spans=spans, demo_used=True, feedback_used=True,
                           thinking_stripped=True)
    text = views.teacher_prompt_html(record)
    assert "<script>" not in text and "<i>" not in text and "<brief>" not in text
    assert marks_of(text) == {"demonstration": demo, "feedback": fb}
    assert "thinking stripped" in text and "BE &lt;BRIEF&gt;." not in text and "Be &lt;brief&gt;." in text
    none = RolloutRecord(prompt="plain <p>", completion="x", score=0.0, feedback=None, group=0)
    assert "masked out" in views.teacher_prompt_html(none) and marks_of(views.teacher_prompt_html(none)) == {}
    assert "<p>" not in views.rollouts_html([record, none])


def test_token_strip_escapes_and_colours(trainer):
    view = views.distribution_view(trainer.model, trainer.processing_class, trainer.last_rollouts[0])
    view.tokens[0] = "<b>&"
    text = views.token_strip_html(view, selected=1)
    assert "&lt;b&gt;&amp;" in text and "<b>&" not in text
    assert text.count("data-pos=") == len(view) and "outline:3px" in text
    colours = views.divergence_colors([0.0, 0.5, 1.0])
    assert colours[0][0] != colours[2][0] and len({c for c, _ in colours}) == 3


def test_distribution_widget_reacts_to_the_slider_and_the_tokens(trainer):
    import ipywidgets as w

    record = trainer.last_rollouts[1]
    settings = views.trainer_settings(trainer)
    widget = widgets.show_distributions(trainer.model, trainer.processing_class, record, **settings)
    assert isinstance(widget, w.VBox) and isinstance(widget.slider, w.IntSlider)
    assert widget.slider.max == len(record.completion_ids) - 1 and len(widget.buttons) == len(record.completion_ids)
    assert widget.slider.value == widget.view.argmax()
    chart, info = widget.chart.value, widget.info.value
    assert 'src="data:image/png;base64,' in chart
    new = (widget.slider.value + 1) % len(widget.view)
    widget.slider.value = new
    assert widget.chart.value != chart and widget.info.value != info
    assert widget.buttons[new].style.font_weight == "bold"
    widget.buttons[0].click()  # a token click moves the slider
    assert widget.slider.value == 0 and "position 0" in widget.chart.value


def test_static_forms(trainer):
    from IPython.display import HTML

    record = trainer.last_rollouts[0]
    static = widgets.show_distributions(trainer.model, trainer.processing_class, record, static=True, position=1)
    assert isinstance(static, HTML) and 'src="data:image/png;base64,' in static.data and "position 1" in static.data
    assert isinstance(widgets.show_teacher_prompt(record, static=True), HTML)
    assert isinstance(widgets.show_teacher_prompt(record), __import__("ipywidgets").HTML)
    browse = widgets.browse_rollouts(trainer.last_rollouts, static=True).data
    assert browse.count("<details") == 4 and "&lt;b&gt;" in browse


def test_rollout_browser(trainer):
    records = trainer.last_rollouts
    settings = views.trainer_settings(trainer)
    browser = widgets.browse_rollouts(records, trainer.model, trainer.processing_class, **settings)
    assert [v for _, v in browser.group.options] == [0, 1]
    assert [v for _, v in browser.rollout.options] == [0, 1]
    first = browser.details.value
    assert "score" in first and marks_of(first) == {k: records[0].teacher_message[slice(*s)]
                                                     for k, s in records[0].spans.items()}
    assert len(browser.distributions.children) == 1
    browser.group.value = 1
    assert [v for _, v in browser.rollout.options] == [2, 3] and browser.rollout.value == 2
    assert browser.details.value == views.rollout_html(records[2])
    browser.rollout.value = 3
    assert browser.details.value == views.rollout_html(records[3])
    assert browser.distributions.children[0].view.token_ids == records[3].completion_ids
    plain = widgets.browse_rollouts(records)  # no model: details only
    assert plain.distributions.children == ()
    with pytest.raises(ValueError, match="no rollouts"):
        widgets.browse_rollouts([])


# Colab keeps ipywidgets 7.7.1 (our pin is 8.1.9): the public synced traits it defines for the classes viz builds,
# read from ipywidgets-7.7.1-py2.py3-none-any.whl, ipywidgets/widgets/: widget_button.py (Button, ButtonStyle),
# widget_layout.py (Layout), widget_int.py (IntSlider, SliderStyle), widget_string.py (HTML), widget_selection.py
# (Dropdown), widget_box.py (Box), widget_description.py (DescriptionStyle, description*), domwidget.py (layout).
IPYWIDGETS_7_TRAITS = {name: set(traits.split()) for name, traits in {
    "Button": "button_style description disabled icon layout style tooltip",
    "ButtonStyle": "button_color font_weight",  # no text_color, text_decoration, font_* (all new in 8.0)
    "Layout": "align_content align_items align_self border bottom display flex flex_flow grid_area grid_auto_columns "
              "grid_auto_flow grid_auto_rows grid_column grid_gap grid_row grid_template_areas grid_template_columns "
              "grid_template_rows height justify_content justify_items left margin max_height max_width min_height "
              "min_width object_fit object_position order overflow overflow_x overflow_y padding right top "
              "visibility width",
    "IntSlider": "continuous_update description description_tooltip disabled layout max min orientation readout "
                 "readout_format step style value",
    "SliderStyle": "description_width handle_color",
    "HTML": "description description_tooltip layout placeholder style value",
    "Dropdown": "description description_tooltip disabled index layout style",
    "DescriptionStyle": "description_width",
    "Box": "box_style children layout",
}.items()}
BORDER_SIDES = {f"border_{side}" for side in ("top", "right", "bottom", "left")}


def traits_set_by_viz(root):
    """{(ipywidgets class, name)} for every public synced trait in a widget tree that differs from a fresh widget's,
    plus any public attribute of a style or layout that is no trait at all (what ipywidgets 7 does with a trait it
    lacks: keeps it in Python, never sends it). 8.x's `border` is a property over four side traits: equal sides
    count as `border`."""
    import ipywidgets as w
    from ipywidgets.widgets.widget_style import Style

    found, todo, seen = set(), [root], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        base = next(c for c in type(obj).__mro__ if c.__module__.startswith("ipywidgets"))
        name = next((c.__name__ for c in base.__mro__ if c.__name__ in IPYWIDGETS_7_TRAITS), base.__name__)
        fresh = base()
        traits = {t for t in obj.trait_names(sync=True) if not t.startswith("_")}
        if isinstance(obj, (Style, w.Layout)):
            found |= {(name, a) for a in vars(obj) if not a.startswith("_") and a not in traits}
        for t in traits:
            value = getattr(obj, t)
            if isinstance(value, w.Widget):
                todo.append(value)
            elif t == "children":
                todo.extend(value)
                found.add((name, t))
            elif value != getattr(fresh, t):
                found.add((name, "border" if t in BORDER_SIDES and obj.border is not None else t))
    return found


def test_widgets_use_only_traits_colabs_ipywidgets_7_has(trainer):
    """Every trait viz sets exists in ipywidgets 7.7.1 (Colab), else 7.x silently drops it (dark text on dark
    token buttons); the token text colour comes from CSS classes instead, which both versions render."""
    records, tok, model = trainer.last_rollouts, trainer.processing_class, trainer.model
    widget = widgets.show_distributions(model, tok, records[1], **views.trainer_settings(trainer))
    widget.slider.value = (widget.slider.value + 1) % len(widget.view)  # selected and unselected buttons both seen
    browser = widgets.browse_rollouts(records, model, tok, **views.trainer_settings(trainer))
    used = set().union(*map(traits_set_by_viz, [widget, browser, widgets.show_teacher_prompt(records[0])]))
    missing = sorted((cls, t) for cls, t in used if t not in IPYWIDGETS_7_TRAITS.get(cls, ()))
    assert not missing, f"ipywidgets 7.7.1 (Colab) lacks {missing}"
    assert {("ButtonStyle", "button_color"), ("Layout", "border"), ("IntSlider", "value")} <= used  # it looked
    # each token's text colour is a CSS class chosen for its background, styled by the header's <style>
    for b, (bg, fg) in zip(widget.buttons, views.divergence_colors(widget.view.per_token_loss)):
        assert b.style.button_color == bg
        assert b._dom_classes == ("sdpo-light-text" if fg == "#ffffff" else "sdpo-dark-text",)
    assert widget.children[0].value.startswith(views.TOKEN_CSS)
    assert ".sdpo-light-text{color:#fff" in views.TOKEN_CSS and ".sdpo-dark-text{color:#000" in views.TOKEN_CSS


# ----------------------------------------------------------------------------------------------------------------
# Which rollout a notebook shows: one that teaches (failed, with a teacher, disagreeing on content)
# ----------------------------------------------------------------------------------------------------------------
def _view(tokens, losses):
    n = len(tokens)
    return views.DistributionView(tokens=tokens, token_ids=list(range(n)), per_token_loss=losses, student_top=[[]] * n,
                                  teacher_top=[[]] * n, student_tail=[0.0] * n, teacher_tail=[0.0] * n,
                                  p_student=[0.5] * n, p_teacher=[0.5] * n)


def _record(completion, score, teacher=True):
    return RolloutRecord(prompt="What is 23 + 45?", completion=completion, score=score, feedback="f", group=0,
                         teacher_prompt="teacher prompt" if teacher else None)


@pytest.fixture
def fake_views(monkeypatch):
    table = {"68": _view(["6", "8"], [0.1, 2.0]),  # passed: never the one shown, however large its loss
             "I solved it: 67": _view(["I", " solved", " it", ":", " 6", "7"], [0.0, 0.9, 0.0, 0.0, 0.1, 0.2]),
             "23 + 45 = 67": _view(["2", "3", " +", " 4", "5", " =", " 6", "7"], [0, 0, 0, 0, 0, 0, 0.3, 0.5]),
             "no teacher 61": _view(["6", "1"], [0.0, 3.0])}
    monkeypatch.setattr(views, "distribution_view", lambda model, tok, record, **kw: table[record.completion])
    return table


def test_teaching_record_prefers_a_failed_rollout_disagreeing_on_a_digit(fake_views):
    records = [_record("68", 1.0), _record("I solved it: 67", 0.0), _record("23 + 45 = 67", 0.0),
               _record("no teacher 61", 0.0, teacher=False)]
    record, view, why = views.teaching_record(None, None, records)
    assert record is records[2] and view is fake_views["23 + 45 = 67"] and "content token" in why
    assert view.tokens[view.argmax()] == "7"


def test_teaching_record_falls_back_to_wording_then_to_any_teacher(fake_views):
    wording = [_record("68", 1.0), _record("I solved it: 67", 0.0)]
    record, _, why = views.teaching_record(None, None, wording)
    assert record is wording[1] and "wording" in why
    only_success = [_record("no teacher 61", 0.0, teacher=False), _record("68", 1.0)]
    record, _, why = views.teaching_record(None, None, only_success)
    assert record is only_success[1] and why.startswith("no failed rollout had a teacher")
    with pytest.raises(ValueError, match="no rollouts"):
        views.teaching_record(None, None, [])
