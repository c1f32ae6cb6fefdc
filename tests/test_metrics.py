"""Metrics on inputs whose answer is known."""
import math

import numpy as np
import pytest
import torch

from vqrepro import metrics, weights


def test_usage_and_perplexity_of_known_counts():
    counts = torch.tensor([5, 5, 5, 5, 0, 0, 0, 0])
    assert metrics.codebook_usage(counts) == 0.5
    assert metrics.perplexity(counts) == pytest.approx(4.0)
    assert metrics.perplexity(torch.tensor([10, 0, 0])) == pytest.approx(1.0)


def test_psnr_of_a_known_error():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.full_like(x, 0.1)  # MSE 0.01 -> 20 dB
    torch.testing.assert_close(metrics.psnr_per_image(x, y), torch.full((2,), 20.0))


def test_ssim_is_one_for_identical_images_and_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((32, 32, 3)).astype(np.float64)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ta, tb = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (a, b))
    assert metrics.ssim_per_image(ta, ta).item() == pytest.approx(1.0)
    ours = metrics.ssim_per_image(ta, tb).item()
    reference = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert ours == pytest.approx(reference, abs=1e-3)


def test_ssim_window_shrinks_for_small_images():
    assert metrics.ssim_window_size(32, 32) == 11
    assert metrics.ssim_window_size(8, 8) == 7


def test_frechet_distance_of_known_gaussians():
    mu, cov = np.zeros(3), np.eye(3)
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # Shift by (1,1,1) and scale the covariance by 4: 3 + tr(I + 4I - 2*2I) = 3 + 3 = 6
    assert metrics.frechet_distance(mu, cov, np.ones(3), 4 * np.eye(3)) == pytest.approx(6.0)


def test_lpips_with_randomly_initialised_backbone(tmp_path):
    """RANDOM WEIGHTS: checks our backbone loading and [-1, 1] handling, not LPIPS's values."""
    import torchvision

    from vqrepro.evaluate import build_lpips

    torch.manual_seed(0)
    path = tmp_path / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    model = build_lpips("alex", path)
    backbone = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.net.slice1[0].weight, backbone["features.0.weight"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert model(x, x).abs().max().item() < 1e-6
    assert model(x, -x).min().item() > 0


def test_missing_weights_are_reported_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, reason = weights.find("inception")
    assert path is None and "nothing is downloaded" in reason
    path, reason = weights.find("inception", {"inception": str(tmp_path / "x.pth")})
    assert path is None and "weights.inception" in reason
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / weights.WEIGHT_FILES["inception"].filename).write_bytes(b"0")
    assert weights.find("inception")[0] is not None


def test_running_mean():
    m = metrics.RunningMean()
    assert math.isnan(m.value)
    m.add(torch.tensor([1.0, 2.0]))
    m.add(torch.tensor([6.0]))
    assert m.value == pytest.approx(3.0)


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """RANDOM WEIGHTS in torch-fidelity's Inception layout: exercises the real rFID path offline, not its values."""
    from unittest import mock

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.manual_seed(0)
    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None), \
            mock.patch("torch_fidelity.feature_extractor_inceptionv3.torch.load", lambda *a, **k: {}):
        extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    path = tmp_path_factory.mktemp("inception") / "weights-inception-random.pth"
    torch.save(extractor.state_dict(), path)
    return path


def test_rfid_through_torch_fidelity_with_random_weights(random_inception_weights):
    from vqrepro.evaluate import rfid

    torch.manual_seed(0)
    images = (torch.rand(12, 3, 32, 32) * 255).to(torch.uint8)
    other = (torch.rand(12, 3, 32, 32) * 64).to(torch.uint8)
    same = rfid(images, images.clone(), random_inception_weights, torch.device("cpu"))
    different = rfid(images, other, random_inception_weights, torch.device("cpu"))
    assert abs(same) < 1e-3 and different > same


def test_rfid_refuses_a_weights_file_that_needs_unpickling(tmp_path):
    import pickle

    from vqrepro.evaluate import rfid

    path = tmp_path / "evil.pth"
    torch.save({"fn": print}, path)  # a pickled callable: what a tampered file could carry
    with pytest.raises(pickle.UnpicklingError):
        rfid(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 3, 8, 8, dtype=torch.uint8), path, torch.device("cpu"))


def test_evaluation_reports_lpips_and_rfid_when_weights_are_present(tmp_path, params, random_inception_weights):
    """RANDOM WEIGHTS for both backbones: the metrics are computed and stored, their values mean nothing."""
    import torchvision

    from vqrepro.evaluate import evaluate_tokenizer
    from vqrepro.io import save_tensors
    from vqrepro.train import train_tokenizer

    torch.manual_seed(0)
    data_dir = tmp_path / "data"
    for split, n in (("train", 64), ("test", 12)):
        save_tensors(data_dir / f"{split}.pt", {"images": (torch.rand(n, 3, 32, 32) * 255).to(torch.uint8)})
    alexnet = tmp_path / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alexnet)
    settings = {"dataset": "random", "quantizer": dict(params["quantizers"]["vq"]), "codebook_size": 8, "code_dim": 4,
                "seed": 0, "model": dict(params["models"]["mini_rgb32"], hidden_channels=8, residual_channels=4),
                "training": dict(params["training"]["mini"], steps=2, batch_size=16)}
    ckpt = train_tokenizer(settings, data_dir, tmp_path / "run")
    eval_cfg = {**params["evaluation"], "weights": {"inception": str(random_inception_weights), "lpips_alex": str(alexnet)}}
    result = evaluate_tokenizer(ckpt, data_dir, tmp_path / "metrics.json", eval_cfg)
    assert result["missing"] == {}
    assert result["metrics"]["lpips"] > 0 and result["metrics"]["rfid"] is not None


def test_frechet_distance_matches_the_matrix_square_root_and_survives_singular_covariances():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 6)), rng.standard_normal((300, 6)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = (a.mean(0) - b.mean(0)) @ (a.mean(0) - b.mean(0)) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(a.mean(0), s1, b.mean(0), s2) == pytest.approx(reference, rel=1e-8)
    singular = np.diag([1.0, 2.0, 0.0])  # a dead ReLU unit has zero variance
    assert metrics.frechet_distance(np.zeros(3), singular, np.zeros(3), singular) == pytest.approx(0.0, abs=1e-8)
