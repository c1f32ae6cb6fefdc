"""Evaluate one trained tokenizer on the whole test split.

Always: MSE, PSNR, SSIM, codebook usage and perplexity; codebook usage and perplexity
on the whole training split too (``usage_train``, ``perplexity_train``): at small data
the test split holds few tokens per code (5,760 test tokens of 8x8 digits for K = 1024),
so test usage undercounts, and the NS-VQ code counts usage over training batches. When the pretrained
weights are present locally: LPIPS (lpips package, AlexNet, on [-1, 1] images) and
rFID (torch-fidelity's inception-v3-compat, uint8 reconstructions against uint8
originals). A metric that cannot be computed is stored as null with its reason
under ``missing``; the job still succeeds.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from . import metrics, runtime, weights
from .snapshots import measure_split
from .data import load_split
from .io import write_json
from .tasks import is_classifier
from .checkpoints import load_model

LPIPS_MIN_SIDE = 32  # AlexNet's pooling stack needs at least this many pixels


def build_lpips(net: str, weights_path: Path) -> torch.nn.Module:
    """LPIPS with its linear heads (shipped inside the lpips package) and a local backbone file."""
    import lpips

    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # pnet_rand: no download
    backbone = torch.load(weights_path, map_location="cpu", weights_only=True)
    for slice_module in (m for name, m in model.net.named_children() if name.startswith("slice")):
        for name, tensor in slice_module.state_dict().items():
            tensor.copy_(backbone[f"features.{name}"])
    return model.eval()


class _Uint8Images(torch.utils.data.Dataset):
    """Images as torch-fidelity wants them: uint8, 3 channels."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = self.images[i]
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def rfid(originals: torch.Tensor, reconstructions: torch.Tensor, weights_path: Path, device: torch.device) -> float:
    import torch_fidelity

    # torch-fidelity unpickles the file freely; refuse anything that is not plain tensors first.
    torch.load(weights_path, map_location="cpu", weights_only=True)

    result = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(reconstructions), input2=_Uint8Images(originals), fid=True,
        feature_extractor_weights_path=str(weights_path), cuda=device.type == "cuda",
        cache=False, verbose=False, batch_size=64, save_cpu_ram=True,  # in-memory inputs: no loader workers
    )
    return float(result["frechet_inception_distance"])


def to_uint8(images01: torch.Tensor) -> torch.Tensor:
    return (images01.clamp(0, 1) * 255.0).round().to(torch.uint8)


@torch.no_grad()
def evaluate_tokenizer(ckpt: str | Path, data_dir: str | Path, out: str | Path, eval_cfg: dict, threads: int = 1,
                       device: str = "auto") -> dict:
    began = time.time()
    dev = runtime.configure(threads, 0, device)
    model, settings = load_model(ckpt, dev)
    test = load_split(data_dir, "test")
    if is_classifier(settings):
        return evaluate_classifier(model, settings, test, data_dir, out, eval_cfg, dev, began)
    k = settings["codebook_size"]
    counts = torch.zeros(k, dtype=torch.long)
    mse, psnr, ssim, lpips_mean = (metrics.RunningMean() for _ in range(4))
    missing: dict[str, str] = {}

    lpips_model = None
    if "lpips" in eval_cfg["metrics"]:
        path, reason = weights.find(f"lpips_{eval_cfg['lpips_net']}", eval_cfg["weights"])
        if min(test.shape[1:]) < LPIPS_MIN_SIDE:
            missing["lpips"] = f"images are {test.shape[1]}x{test.shape[2]}; AlexNet LPIPS needs at least {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE}"
        elif path is None:
            missing["lpips"] = reason
        else:
            lpips_model = build_lpips(eval_cfg["lpips_net"], path).to(dev)
    fid_path = None
    if "rfid" in eval_cfg["metrics"]:
        fid_path, reason = weights.find("inception", eval_cfg["weights"])
        if fid_path is None:
            missing["rfid"] = reason
    originals, reconstructions = [], []

    batch_size = eval_cfg["batch_size"]
    for start in range(0, len(test), batch_size):
        x = test.batch(torch.arange(start, min(start + batch_size, len(test)))).to(dev)
        recon, quantized = model(model.images_in(x))
        recon01 = model.images_out(recon)
        counts += torch.bincount(quantized.indices.flatten().cpu(), minlength=k)
        mse.add(metrics.mse_per_image(recon01, x))
        psnr.add(metrics.psnr_per_image(recon01, x))
        ssim.add(metrics.ssim_per_image(recon01, x))
        if lpips_model is not None:
            rgb = (lambda t: t.expand(-1, 3, -1, -1)) if x.shape[1] == 1 else (lambda t: t)
            lpips_mean.add(lpips_model(rgb(recon01) * 2 - 1, rgb(x) * 2 - 1).flatten())
        if fid_path is not None:
            originals.append(to_uint8(x).cpu())
            reconstructions.append(to_uint8(recon01).cpu())

    on_train = measure_split(model, load_split(data_dir, "train"), batch_size, dev, with_mse=False)
    values = {
        "mse": mse.value, "psnr": psnr.value, "ssim": ssim.value,
        "usage": metrics.codebook_usage(counts), "perplexity": metrics.perplexity(counts),
        "usage_train": on_train["usage"], "perplexity_train": on_train["perplexity"],
        "lpips": lpips_mean.value if lpips_model is not None else None,
        "rfid": rfid(torch.cat(originals), torch.cat(reconstructions), fid_path, dev) if fid_path is not None else None,
    }
    result = {
        "metrics": values,
        "missing": missing,
        "test_images": len(test),
        "ssim_window": metrics.ssim_window_size(*test.shape[1:]),
        "codes_used": int((counts > 0).sum()),
        "tokens": {"test": int(counts.sum()), "train": on_train["tokens"]},
        "provenance": runtime.provenance(settings, dev, time.time() - began),
    }
    write_json(out, result)
    return result


def evaluate_classifier(model, settings: dict, test, data_dir: str | Path, out: str | Path, eval_cfg: dict,
                        dev: torch.device, began: float) -> dict:
    """Test accuracy of a classifier with a VQ bottleneck, and the usage of its codebook on the test split."""
    k = settings["codebook_size"]
    counts = torch.zeros(k, dtype=torch.long)
    correct = 0
    for start in range(0, len(test), eval_cfg["batch_size"]):
        idx = torch.arange(start, min(start + eval_cfg["batch_size"], len(test)))
        logits, quantized = model(model.images_in(test.batch(idx).to(dev)))
        correct += int((logits.argmax(1).cpu() == test.labels[idx]).sum())
        counts += torch.bincount(quantized.indices.flatten().cpu(), minlength=k)
    on_train = measure_split(model, load_split(data_dir, "train"), eval_cfg["batch_size"], dev, with_mse=False)
    values = {"accuracy": correct / len(test), "usage": metrics.codebook_usage(counts),
              "perplexity": metrics.perplexity(counts), "usage_train": on_train["usage"],
              "perplexity_train": on_train["perplexity"]}
    result = {
        "metrics": values,
        "missing": {},
        "test_images": len(test),
        "codes_used": int((counts > 0).sum()),
        "tokens": {"test": int(counts.sum()), "train": on_train["tokens"]},
        "provenance": runtime.provenance(settings, dev, time.time() - began),
    }
    write_json(out, result)
    return result
