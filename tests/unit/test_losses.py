import torch

from onerec_trt.model.train.losses import code_marginals, distillation_loss

# items 1..4 with two-level codes; row 0 is padding
CODES = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 0], [1, 1]])
PROBS = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4]])


def test_code_marginals_follow_the_target_prefix():
    first, second = code_marginals(PROBS, CODES, torch.tensor([[1, 0]]), [2, 2])
    assert torch.allclose(first, torch.tensor([[0.3, 0.7]]))
    assert torch.allclose(second, torch.tensor([[0.3 / 0.7, 0.4 / 0.7]]))
    _, second = code_marginals(PROBS, CODES, torch.tensor([[0, 1]]), [2, 2])
    assert torch.allclose(second, torch.tensor([[1 / 3, 2 / 3]]))


def test_distillation_is_smallest_when_the_levels_match_the_teacher():
    teacher = torch.log(PROBS.clamp_min(1e-30))  # column 0 is ignored (padding)
    target = torch.tensor([[1, 0]])
    exact = [torch.log(q) for q in code_marginals(PROBS, CODES, target, [2, 2])]
    best = distillation_loss(exact, teacher, CODES, target)
    entropy = -sum((q * q.log()).sum() for q in code_marginals(PROBS, CODES, target, [2, 2]))
    assert torch.allclose(best, entropy)
    for seed in range(5):
        other = [torch.randn(1, 2, generator=torch.Generator().manual_seed(seed))
                 for _ in range(2)]
        assert distillation_loss(other, teacher, CODES, target) > best
    student = [torch.zeros(1, 2, requires_grad=True) for _ in range(2)]
    distillation_loss(student, teacher, CODES, target).backward()
    assert all(s.grad.abs().sum() > 0 for s in student)
