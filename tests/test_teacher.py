"""The teacher: EMA maths and precision, frozen/live modes, its own forward pass, and the LoRA adapter teacher."""
import pytest
import torch
from conftest import tiny_trainer
from peft import LoraConfig, get_peft_model

from sdpo_lite import SDPOConfig
from sdpo_lite.course.models import load_model
from sdpo_lite.teacher import TEACHER_ADAPTER, Teacher


def ids_and_mask(n=6, device="cpu"):
    ids = torch.arange(10, 10 + n, device=device).unsqueeze(0)
    return ids, torch.ones_like(ids)


def teacher_logits(teacher):
    hidden, head = teacher.hidden_states(*ids_and_mask(device=teacher.student.device))
    return head(hidden)


def perturb(model, scale=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dtype.is_floating_point:
                p.add_(torch.randn(p.shape, generator=g).to(p.device, p.dtype) * scale)


def test_ema_update_is_the_textbook_average():
    model, _ = load_model("tiny", precision="fp32", device="cpu")
    teacher = Teacher(model, SDPOConfig(ema_tau=0.25))
    t0 = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    perturb(model)
    teacher.update()
    for name, s in model.state_dict().items():
        torch.testing.assert_close(teacher.module.state_dict()[name], 0.75 * t0[name] + 0.25 * s)


def test_half_precision_ema_keeps_an_fp32_shadow():
    """At r = 0.01 a bf16 EMA rounds most updates away; the fp32 shadow accumulates them."""
    model, _ = load_model("tiny", precision="fp32", device="cpu")
    model = model.to(torch.bfloat16)
    w_s = model.model.layers[0].mlp.up_proj.weight
    with torch.no_grad():
        w_s.fill_(1.0)  # near 1.0, bf16 resolves steps of 1/128: a 0.0005 EMA step rounds away
    teacher = Teacher(model, SDPOConfig(ema_tau=0.01))
    w_t = teacher.module.model.layers[0].mlp.up_proj.weight
    start = w_t.detach().float().clone()
    with torch.no_grad():
        w_s.add_(0.05)  # the student moved; each EMA step should move the teacher by 1% of the gap
    naive = w_t.detach().clone()
    for _ in range(20):
        teacher.update()
        naive.lerp_(w_s.detach(), 0.01)  # what a bf16-only EMA would do
    moved = (w_t.float() - start).abs().mean().item()
    assert moved == pytest.approx(0.05 * (1 - 0.99 ** 20), abs=1 / 128)  # up to one bf16 step
    assert moved > 0.005
    assert (naive.float() - start).abs().max().item() == 0.0  # the trap: a bf16-only EMA never moves
    assert w_t.dtype == torch.bfloat16


def test_frozen_and_live():
    model, _ = load_model("tiny", precision="fp32", device="cpu")
    frozen = Teacher(model, SDPOConfig(teacher_mode="frozen"))
    live = Teacher(model, SDPOConfig(teacher_mode="live"))
    before = teacher_logits(frozen)
    perturb(model)
    frozen.update()
    torch.testing.assert_close(teacher_logits(frozen), before)
    assert live.module is None
    ids, mask = ids_and_mask(device=model.device)
    torch.testing.assert_close(teacher_logits(live), model(input_ids=ids, attention_mask=mask).logits)


def test_teacher_is_not_the_student_under_trls_forward_patch():
    """sdpo-rl's deep-copied teacher kept TRL's forward wrapper, which runs the STUDENT. Ours must not."""
    trainer = tiny_trainer(lambda prompts, completions, **kw: [0.0] * len(completions),
                           sdpo=SDPOConfig(teacher_mode="frozen"))
    student = trainer.accelerator.unwrap_model(trainer.model)
    assert "forward" in student.__dict__  # TRL (and we) patched the student's forward
    assert "forward" not in trainer.teacher.module.__dict__
    same = teacher_logits(trainer.teacher)
    perturb(student)
    ids, mask = ids_and_mask(device=student.device)
    student_logits = student(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(teacher_logits(trainer.teacher), student_logits, atol=1e-3)
    torch.testing.assert_close(teacher_logits(trainer.teacher), same)


def lora_model():
    model, tok = load_model("tiny", precision="fp32", device="cpu")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], lora_dropout=0.0)
    return get_peft_model(model, config), tok


def perturb_adapter(model, adapter="default", seed=1):
    """Give an adapter non-zero, deterministic LoRA factors (PEFT starts B at zero, which hides a missing copy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n and f".{adapter}." in n:
                p.copy_(torch.randn(p.shape, generator=g).to(p.dtype) * 0.3)


def adapter_params(model, adapter):
    """{name with the adapter's name replaced by 'ADAPTER': tensor} of one adapter's LoRA factors."""
    return {n.replace(f".{adapter}.", ".ADAPTER."): p.detach().clone() for n, p in model.named_parameters()
            if "lora_" in n and f".{adapter}." in n}


def test_lora_teacher_is_an_adapter_not_a_second_model():
    model, _ = lora_model()
    perturb_adapter(model)  # BEFORE the teacher exists: it must start from these trained-looking factors
    ids, mask = ids_and_mask(device=model.device)
    with model.disable_adapter():
        base_logits = model(input_ids=ids, attention_mask=mask).logits
    student_before = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(student_before, base_logits, atol=1e-4)  # the adapter matters to the output
    base_before = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    s0 = adapter_params(model, "default")
    assert s0 and all(v.abs().sum() > 0 for v in s0.values())

    teacher = Teacher(model, SDPOConfig(ema_tau=0.5))
    assert teacher.module is None and teacher.uses_adapter
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n) == base_before  # no copy
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable  # flags untouched
    assert all(TEACHER_ADAPTER in n for n, p in model.named_parameters() if "lora_" in n and not p.requires_grad)
    t0 = adapter_params(model, TEACHER_ADAPTER)
    assert t0.keys() == s0.keys()
    for n in s0:  # the teacher adapter is a copy of the student's, factor by factor (A and B)
        torch.testing.assert_close(t0[n], s0[n], rtol=0, atol=0)
    torch.testing.assert_close(teacher_logits(teacher), student_before)  # starts as the student

    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n and ".default." in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.2)  # the student moves, A and B alike
    s1 = adapter_params(model, "default")
    student_after = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(teacher_logits(teacher), student_before)  # the teacher did not follow
    teacher.update()  # tau = 0.5: each teacher factor = (0.5 * its start + 0.5 * the student's factor now)
    t1 = adapter_params(model, TEACHER_ADAPTER)
    for n in s0:
        torch.testing.assert_close(t1[n], 0.5 * s0[n] + 0.5 * s1[n])
        assert (t1[n] - t0[n]).abs().max() > 1e-3  # it moved, by half the gap
    teacher.update()  # a second step halves the remaining gap: 0.25 * start + 0.75 * student
    for n, t2 in adapter_params(model, TEACHER_ADAPTER).items():
        torch.testing.assert_close(t2, 0.25 * s0[n] + 0.75 * s1[n])
    t = teacher_logits(teacher)
    assert not torch.allclose(t, student_after) and not torch.allclose(t, student_before)
    assert model.active_adapter == "default"
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, student_after)  # student untouched


def test_sdpo_trains_a_lora_model():
    def half(prompts, completions, **kw):
        return [{"score": float(i % 2 == 0), "feedback": "fb"} for i in range(len(completions))]

    model, tok = load_model("tiny", precision="fp32", device="cpu")
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    from datasets import Dataset
    from trl import GRPOConfig

    from sdpo_lite import SDPOTrainer
    dataset = Dataset.from_list([{"prompt": "1 + 2 ="}, {"prompt": "3 + 4 ="}])
    args = GRPOConfig(output_dir="/tmp/sdpo_lora", per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=2, learning_rate=0.05, report_to=[], use_cpu=True,
                      bf16=False, save_strategy="no", disable_tqdm=True)
    trainer = SDPOTrainer(model=model, args=args, sdpo_config=SDPOConfig(distillation_topk=10), processing_class=tok,
                          reward_funcs=[half], train_dataset=dataset, peft_config=peft_config)
    trainer.train()
    assert trainer.teacher.uses_adapter and trainer.teacher.updates == 2
    assert trainer.state.global_step == 2
