"""Stage 2: priors learn, sample within range, MaskGIT unmasks everything, scores behave on known input."""
import math

import pytest
import torch

from vqrepro.generation import precision_recall
from vqrepro.prior import (bits_per_token, build_prior, maskgit_unmasked_counts, prior_loss, sample_maskgit,
                           sample_tokens)

K, L = 16, 8


def preset(kind: str) -> dict:
    return {"kind": kind, "layers": 2, "heads": 2, "width": 32, "dropout": 0.0,
            "num_samples": 4, "temperature": 1.0, "top_k": None, "decode_steps": 4, "choice_temperature": 4.5}


def fit(kind: str, sequences: torch.Tensor, steps: int = 300) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_prior(preset(kind), K, L)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = sequences.repeat(8, 1)
    for _ in range(steps):
        loss = prior_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_autoregressive_prior_overfits_to_the_irreducible_entropy():
    torch.manual_seed(1)
    sequences = torch.randint(0, K, (3, L))
    model = fit("autoregressive", sequences)
    # Only the first token is uncertain (3 equally likely sequences): log2(3) bits over L tokens.
    floor = math.log2(3) / L
    assert bits_per_token(model, sequences) < floor + 0.05


def test_maskgit_prior_overfits_a_single_sequence():
    sequence = torch.randint(0, K, (1, L), generator=torch.Generator().manual_seed(2))
    model = fit("maskgit", sequence)
    assert bits_per_token(model, sequence) < 0.05
    tokens = sample_maskgit(model, 5, 1.0, None, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (tokens == sequence).all()


@pytest.mark.parametrize("kind", ["autoregressive", "maskgit"])
def test_untrained_uniform_prior_scores_log2_k_bits_and_samples_in_range(kind):
    model = build_prior(preset(kind), K, L).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    tokens = torch.randint(0, K, (5, L))
    assert bits_per_token(model, tokens) == pytest.approx(math.log2(K), abs=1e-5)
    samples = sample_tokens(model, preset(kind), 50, seed=0, device=torch.device("cpu"))
    assert samples.shape == (50, L) and samples.min() >= 0 and samples.max() < K


@pytest.mark.parametrize("length,steps", [(8, 4), (16, 8), (64, 8), (5, 12), (1, 1)])
def test_maskgit_schedule_unmasks_every_position_by_its_last_step(length, steps):
    counts = maskgit_unmasked_counts(length, steps)
    assert len(counts) == steps
    assert counts[-1] == length
    assert all(a <= b for a, b in zip(counts, counts[1:]))
    model = build_prior(preset("maskgit"), K, length).eval()
    tokens = sample_maskgit(model, 3, 1.0, 4, steps, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (tokens != model.special).all()


def test_top_k_one_is_greedy():
    torch.manual_seed(0)
    model = build_prior(preset("autoregressive"), K, L).eval()
    settings = dict(preset("autoregressive"), top_k=1)
    a = sample_tokens(model, settings, 3, seed=0, device=torch.device("cpu"))
    b = sample_tokens(model, settings, 3, seed=1, device=torch.device("cpu"))
    assert torch.equal(a, b)  # the seed no longer matters


def test_precision_recall_of_known_sets():
    torch.manual_seed(0)
    real = torch.randn(200, 4)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)


def test_too_few_samples_for_precision_and_recall_are_n_a_with_the_reason():
    """Two samples cannot hold a k = 3 nearest-neighbour ball (a paper config's rehearsal draws two)."""
    from vqrepro.generation import feature_scores

    identity = type("Features", (), {"features": staticmethod(lambda images: images.flatten(1))})()
    scores, missing = feature_scores(identity, torch.randn(10, 4), torch.randn(2, 4))
    assert scores["precision"] is None and scores["recall"] is None and scores["fd_classifier"] >= 0
    assert missing["precision"] == ("precision and recall need more than 3 samples and test images (k-NN balls, "
                                    "k = 3); there were 2 and 10")
    scores, missing = feature_scores(identity, torch.randn(10, 4), torch.randn(5, 4))
    assert 0 <= scores["precision"] <= 1 and missing == {}


def test_killed_prior_training_resumes_to_the_same_weights(tmp_path):
    import json
    import sys

    from conftest import kill_after_first_checkpoint_then_rerun
    from vqrepro.io import load_tensors, save_tensors
    from vqrepro.prior import train_prior

    tokens = tmp_path / "tokens_train.pt"
    save_tensors(tokens, {"tokens": torch.randint(0, K, (200, 2, 4), generator=torch.Generator().manual_seed(0)),
                          "codebook_size": K})
    settings = {**{k: v for k, v in preset("autoregressive").items() if k in ("kind", "layers", "heads", "width", "dropout")},
                "steps": 300, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.01, "log_every": 10,
                "checkpoint_every": 10, "snapshot_every": 100}
    reference = load_tensors(train_prior(settings, tokens, tmp_path / "reference", seed=0))

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vqrepro", "train-prior", "--settings", json.dumps(settings), "--tokens", str(tokens),
           "--seed", "0", "--out", str(out)]
    kill_after_first_checkpoint_then_rerun(cmd, out, "prior.pt", 300,
                                           rule_outputs=("prior.pt", "prior.pt.sha256", "prior_log.csv"))
    resumed = load_tensors(out / "prior.pt")
    for name, tensor in reference["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert sorted(resumed["snapshots"], key=int) == ["100", "200", "300"]
    # the log deleted with the failed job's outputs is rebuilt: every row once, as in an uninterrupted run
    assert (out / "prior_log.csv").read_text() == (tmp_path / "reference" / "prior_log.csv").read_text()
