"""The LoRA adapter teacher: no dropout in its pass, its own copy of `modules_to_save` layers, no LoRA on the head."""
import pytest
import torch
from conftest import tiny_trainer
from peft import LoraConfig, get_peft_model

from sdpo_lite import SDPOConfig
from sdpo_lite.loss import teacher_logprobs_at
from sdpo_lite.course.models import load_model
from sdpo_lite.teacher import TEACHER_ADAPTER, Teacher, backbone_hidden_states


def lora_model(**lora):
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], **lora)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # non-zero adapters, so the adapter (and its dropout) changes the output
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return peft_model, tok


def inputs(tok):
    ids = torch.tensor([tok("What is 2 + 3? The answer is 5.")["input_ids"]])
    return ids, torch.ones_like(ids)


def test_teacher_pass_has_no_dropout_and_leaves_the_student_training():
    model, tok = lora_model(lora_dropout=0.5)
    model.train()
    teacher = Teacher(model, SDPOConfig())
    ids, mask = inputs(tok)
    first, _ = teacher.hidden_states(ids, mask)
    second, _ = teacher.hidden_states(ids, mask)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # It equals the teacher adapter in eval mode, and the student is still in train mode afterwards.
    assert all(m.training for m in model.modules())
    model.eval()
    model.set_adapter(TEACHER_ADAPTER)
    with torch.no_grad():
        reference = backbone_hidden_states(model.get_base_model(), ids, mask)
    model.set_adapter("default")
    torch.testing.assert_close(first, reference, rtol=1e-5, atol=1e-5)


def test_teacher_uses_its_own_copy_of_modules_to_save():
    model, tok = lora_model(lora_dropout=0.0, modules_to_save=["lm_head"])
    teacher = Teacher(model, SDPOConfig())
    student_head = model.get_base_model().lm_head.modules_to_save["default"]
    teacher_head = model.get_base_model().lm_head.modules_to_save[TEACHER_ADAPTER]
    torch.testing.assert_close(teacher_head.weight, student_head.weight)  # starts as the student
    with torch.no_grad():
        student_head.weight.add_(torch.randn_like(student_head.weight))  # the student's head moves on, alone
    ids, mask = inputs(tok)
    hidden, head = teacher.hidden_states(ids, mask)
    assert torch.equal(head.weight, teacher_head.weight) and not torch.equal(head.weight, student_head.weight)
    # Against the teacher adapter's own forward (lm_head = the teacher's copy there).
    model.set_adapter(TEACHER_ADAPTER)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    model.set_adapter("default")
    y = ids[:, 1:]
    q, _ = teacher_logprobs_at(hidden[:, :-1], head, y, None, temperature=1.0)
    torch.testing.assert_close(q, torch.log_softmax(logits[:, :-1].float(), -1), rtol=1e-4, atol=1e-4)


def test_lora_on_the_lm_head_is_refused_at_construction():
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    model.config.tie_word_embeddings = False
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "lm_head"], lora_dropout=0.0))

    def reward(prompts, completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="lm_head"):  # TRL refuses it first; sdpo_lite.loss.lm_head_of also would
        tiny_trainer(reward, model=(peft_model, tok), sdpo=SDPOConfig(distillation_topk=20))
