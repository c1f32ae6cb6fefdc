"""Paper vs. reproduction tables and the claims check, on hand-made summaries and the real paper_numbers CSVs."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from vqrepro import intervals
from vqrepro.claims import ResultFiles, check_claims, evaluate_claim, evaluate_claims, render_claims_markdown
from vqrepro.compare import check_paper_numbers, paper_vs_repro
from vqrepro.config import paper_numbers_dir

NAN = math.nan


PAPER = paper_numbers_dir()


def row(label, quantizer, seeds=3, codebook_size=512, code_dim=64, **metrics):
    """One summary row; metrics as name=(mean, std)."""
    out = {"row": label, "quantizer": quantizer, "codebook_size": codebook_size, "code_dim": code_dim, "seeds": seeds}
    for name, (mean, std) in metrics.items():
        out[f"{name}_mean"], out[f"{name}_std"] = mean, std
    return out


def table_row(markdown: str, label: str) -> list[str]:
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells
    raise AssertionError(f"no table row {label!r} in\n{markdown}")


STE_TABLE3 = {
    "paper": "Straightening Out the STE",
    "reproduces": "Table 3 (CIFAR10): reconstruction with each add-on",
    "rows": {"vq": "VQVAE", "vq_l2": "VQVAE + l2", "vq_replace": "VQVAE + replace"},
    "axes": [],
    "metrics": ["mse", "perplexity", "lpips"],
    "paper_numbers": {
        "file": "ste_generative_reconstruction.csv",
        "where": {"dataset": "CIFAR10"},
        "row_column": "method",
        "axes": {},
        "aliases": {},
        "metrics": {"mse": ["mse_1e-3", 1.0e-3], "perplexity": ["perplexity", 1.0], "lpips": ["lpips_1e-1", 0.1]},
    },
}

STE_TABLE2 = {
    "paper": "Straightening Out the STE",
    "reproduces": "Table 2 (AlexNet): classification with each add-on",
    "rows": {
        "vq": {"label": "baseline", "paper": {"affine": 0, "sync": 0, "alt": 0, "replace": 0}},
        "vq_affine": {"label": "+ affine", "paper": {"affine": 1, "sync": 0, "alt": 0, "replace": 0}},
    },
    "axes": [],
    "metrics": ["accuracy", "perplexity"],
    "paper_numbers": {
        "file": "ste_classification.csv",
        "where": {"model": "AlexNet"},
        "metrics": {"accuracy": ["accuracy", 0.01], "perplexity": ["perplexity", 1.0]},
    },
}

STE_TABLE1 = {
    "paper": "Straightening Out the STE",
    "reproduces": "Table 1: collapse prevention",
    "rows": {
        "vq_kaiming": {"label": "kaiming, none", "paper": {"init": "kaiming", "method": "None"}},
        "vq_repkm": {"label": "kaiming, Rep. KM", "paper": {"init": "kaiming", "method": "Rep. KM"}},
    },
    "axes": [],
    "metrics": ["usage", "accuracy"],
    "paper_numbers": {
        "file": "ste_collapse_prevention.csv",
        "metrics": {"usage": ["active_pct", 0.01], "accuracy": ["accuracy", 0.01]},
    },
}

NSVQ_TABLE2 = {
    "paper": "NS-VQ",
    "reproduces": "Table 2: codebook size at code dimension 3",
    "rows": {"vq_fc": "VQGAN-FC", "nsvq": "NS-VQ"},
    "axes": ["codebook_size"],
    "metrics": ["rfid", "usage"],
    "paper_numbers": {
        "file": "nsvq_size_dim_grid.csv",
        "where": {"table": "table2"},
        "row_column": "method",
        "axes": {"codebook_size": "codebook_size"},
        "aliases": {"codebook_size": {8912: 8192}},
        "metrics": {"rfid": ["rfid", 1.0], "usage": ["usage", 1.0]},
    },
}


# --------------------------------------------------------------------------- check_paper_numbers


@pytest.mark.parametrize("spec", [STE_TABLE3, STE_TABLE2, STE_TABLE1, NSVQ_TABLE2])
def test_real_specs_pass_the_check(spec):
    check_paper_numbers("r", spec, PAPER)


def test_no_paper_numbers_is_fine():
    spec = {k: v for k, v in STE_TABLE3.items() if k != "paper_numbers"}
    check_paper_numbers("r", spec, PAPER)


def _broken(spec, path, value):
    spec = copy.deepcopy(spec)
    node = spec
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return spec


@pytest.mark.parametrize(("path", "value", "message"), [
    (("paper_numbers", "file"), "nope.csv", r"reproductions\.r\.paper_numbers\.file: 'nope.csv' not found: looked for .*nope\.csv"),
    (("paper_numbers", "where"), {"datasett": "CIFAR10"}, r"reproductions\.r\.paper_numbers\.where\.datasett: 'datasett' is not a column"),
    (("paper_numbers", "where"), {"dataset": "MNIST"}, r"reproductions\.r\.paper_numbers\.where: .* matches no row"),
    (("paper_numbers", "row_column"), "methods", r"reproductions\.r\.paper_numbers\.row_column: 'methods' is not a column"),
    (("paper_numbers", "row_column"), KeyError, r"reproductions\.r\.paper_numbers\.row_column: missing"),
    (("paper_numbers", "axes"), {"codebook_size": "codebook_size"}, r"paper_numbers\.axes\.codebook_size: 'codebook_size' is not in reproductions\.r\.axes"),
    (("paper_numbers", "metrics", "mse"), ["mse", 1e-3], r"reproductions\.r\.paper_numbers\.metrics\.mse: 'mse' is not a column"),
    (("paper_numbers", "metrics", "mse"), ["mse_1e-3", 0], r"paper_numbers\.metrics\.mse: the factor must be a positive number"),
    (("paper_numbers", "metrics", "usage"), ["perplexity", 1.0], r"paper_numbers\.metrics\.usage: 'usage' is not in reproductions\.r\.metrics"),
    (("paper_numbers", "tabel"), "x", r"reproductions\.r\.paper_numbers\.tabel: unknown key"),
    (("rows", "vq"), "VQ-VAE", r"reproductions\.r\.paper_numbers\.file: the paper row of reproductions\.r\.rows\.vq, \{method: 'VQ-VAE'\}"),
])
def test_check_paper_numbers_errors(path, value, message):
    with pytest.raises(ValueError, match=message):
        check_paper_numbers("r", _broken(STE_TABLE3, path, value), PAPER)


def test_check_names_a_mapping_row_not_in_the_csv():
    spec = _broken(STE_TABLE2, ("rows", "vq", "paper", "affine"), 2)
    with pytest.raises(ValueError, match=r"rows\.vq, \{affine: 2, sync: 0, alt: 0, replace: 0\}.* is not in ste_classification"):
        check_paper_numbers("r", spec, PAPER)


def test_check_rejects_rows_the_csv_cannot_tell_apart():
    # both tables 2 and 3 of NS-VQ hold every (method, codebook_size): without the table filter they are ambiguous
    spec = _broken(NSVQ_TABLE2, ("paper_numbers", "where"), {})
    with pytest.raises(ValueError, match=r"paper_numbers\.axes: .*rows\.vq_fc.*matches several rows.*table2.*table3"):
        check_paper_numbers("r", spec, PAPER)
    # and a mapping row without the model filter matches AlexNet, ResNet18 and ViT-T
    spec = _broken(STE_TABLE2, ("paper_numbers", "where"), {})
    with pytest.raises(ValueError, match=r"paper_numbers\.where: .*rows\.vq.*matches several rows.*AlexNet.*ResNet18.*ViT-T"):
        check_paper_numbers("r", spec, PAPER)


# --------------------------------------------------------------------------- paper_vs_repro


def test_string_rows_unit_conversion_na_and_failed():
    summary = pd.DataFrame([
        row("VQVAE + l2", "vq_l2", seeds=0, mse=(NAN, NAN), perplexity=(NAN, NAN), lpips=(NAN, NAN)),
        row("VQVAE", "vq", mse=(0.00565, 0.0002), perplexity=(20.0, 1.5), lpips=(NAN, NAN)),
        row("VQVAE + replace", "vq_replace", seeds=1, mse=(0.005, NAN), perplexity=(100.0, NAN), lpips=(0.5, NAN)),
    ])
    md = paper_vs_repro("ste_table3_cifar10", STE_TABLE3, summary, PAPER, "mini",
                        "CIFAR10 at 32x32, a small conv VQ-VAE, 2k steps",
                        {"lpips": "the LPIPS weights cannot be downloaded offline"})
    assert md.startswith("# Straightening Out the STE: Table 3 (CIFAR10): reconstruction with each add-on\n")
    assert "Ours: measured at mini scale (CIFAR10 at 32x32, a small conv VQ-VAE, 2k steps). Paper: dataset = CIFAR10" in md
    assert "the difference column shows the gap rather than hiding it" in md
    # rows in the spec's order, whatever the summary's
    labels = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| VQVAE")]
    assert labels == ["VQVAE", "VQVAE + l2", "VQVAE + replace"]
    # row, seeds, then (paper, ours, difference) per metric; ours in the paper's units
    assert table_row(md, "VQVAE") == ["VQVAE", "3", "5.65", "5.65 ± 0.20", "0.00", "14.0", "20.0 ± 1.5", "+6.0",
                                      "5.43", "n/a [lpips]", "—"]
    assert table_row(md, "VQVAE + l2") == ["VQVAE + l2", "0", "3.21", "failed", "—", "57.0", "failed", "—",
                                           "3.64", "failed", "—"]
    # lpips 0.5 raw = 5.0 in the paper's 1e-1 units, paper 4.30: +0.70; one seed: no ±
    assert table_row(md, "VQVAE + replace") == ["VQVAE + replace", "1", "4.07", "5.00", "+0.93", "109.8", "100.0",
                                                "-9.8", "4.30", "5.00", "+0.70"]
    assert "n/a [lpips]: the LPIPS weights cannot be downloaded offline." in md
    assert "mse as `mse_1e-3` (ours / 0.001)" in md
    # deterministic
    assert md == paper_vs_repro("ste_table3_cifar10", STE_TABLE3, summary, PAPER, "mini",
                                "CIFAR10 at 32x32, a small conv VQ-VAE, 2k steps",
                                {"lpips": "the LPIPS weights cannot be downloaded offline"})


def test_mapping_rows_match_numbers_given_as_ints():
    summary = pd.DataFrame([row("+ affine", "vq_affine", accuracy=(0.5, 0.01), perplexity=(600.0, 10.0)),
                            row("baseline", "vq", accuracy=(0.472, 0.01), perplexity=(11.2, 0.5))])
    md = paper_vs_repro("t2", STE_TABLE2, summary, PAPER, "mini", "CIFAR10 classifier", {})
    assert "Paper: model = AlexNet" in md
    assert table_row(md, "baseline") == ["baseline", "3", "47.2", "47.2 ± 1.0", "0.0", "11.2", "11.2 ± 0.5", "0.0"]
    assert table_row(md, "+ affine") == ["+ affine", "3", "55.7", "50.0 ± 1.0", "-5.7", "648.1", "600.0 ± 10.0",
                                         "-48.1"]


def test_method_none_is_a_label_and_percent_units():
    summary = pd.DataFrame([row("kaiming, none", "vq_kaiming", usage=(0.07, 0.01), accuracy=(0.6, 0.02)),
                            row("kaiming, Rep. KM", "vq_repkm", usage=(0.99, 0.0), accuracy=(NAN, NAN))])
    md = paper_vs_repro("t1", STE_TABLE1, summary, PAPER, "mini", "x", {"accuracy": "no classifier at mini scale"})
    assert table_row(md, "kaiming, none") == ["kaiming, none", "3", "6.8", "7.0 ± 1.0", "+0.2", "59.3",
                                              "60.0 ± 2.0", "+0.7"]
    assert table_row(md, "kaiming, Rep. KM")[2:5] == ["99.0", "99.0 ± 0.0", "0.0"]
    assert "n/a [accuracy]: no classifier at mini scale." in md


def test_codebook_size_alias_and_axis_value_the_paper_lacks():
    summary = pd.DataFrame([row("NS-VQ", "nsvq", codebook_size=k, code_dim=3, rfid=(20.0, 1.0), usage=(0.5, 0.1))
                            for k in (8192, 2048, 64)])
    md = paper_vs_repro("t", NSVQ_TABLE2, summary, PAPER, "mini", "x", {})
    lines = [line for line in md.splitlines() if line.startswith("| NS-VQ")]
    assert [line.split("|")[2].strip() for line in lines] == ["64", "2048", "8192"]  # sorted along the axis
    assert table_row(md, "Row") == ["Row", "K", "Seeds", "rfid [rfid]: Paper", "rfid: Ours", "rfid: Difference",
                                    "usage [usage]: Paper", "usage: Ours", "usage: Difference"]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[2] == ["NS-VQ", "8192", "3", "16.89", "20.00 ± 1.00", "+3.11", "1.00", "0.50 ± 0.10", "-0.50"]
    assert cells[1][3] == "—" and cells[1][5] == "—"  # the paper has no K=2048
    assert "codebook_size 8912 read as 8192" in md


def test_ambiguous_row_in_the_table_names_the_csv_rows():
    spec = _broken(NSVQ_TABLE2, ("paper_numbers", "axes"), {})
    spec["axes"] = []
    spec["paper_numbers"].pop("aliases")
    with pytest.raises(ValueError, match=r"matches several rows.*CSV line"):
        check_paper_numbers("t", spec, PAPER)


def test_no_paper_numbers_lists_ours_in_our_units():
    spec = {k: v for k, v in STE_TABLE3.items() if k != "paper_numbers"}
    summary = pd.DataFrame([row("VQVAE", "vq", mse=(0.00565, NAN), perplexity=(20.0, NAN), lpips=(0.3, NAN))])
    md = paper_vs_repro("t", spec, summary, PAPER, "mini", "x", {})
    assert "The paper reports no numbers for this table in vqrepro/paper_numbers" in md
    assert table_row(md, "VQVAE") == ["VQVAE", "3", "5.65", "20.0", "0.300"]


# --------------------------------------------------------------------------- claims


REPRODUCTIONS = {
    "cvq_fig1_usage": {"rows": {"vq": "VQ-VAE", "cvq": "CVQ-VAE"}, "axes": [], "metrics": ["usage", "mse"]},
    "nsvq_fig4_batch_size": {"rows": {"vq": "VQ", "nsvq": "NS-VQ"}, "axes": ["batch_size"], "metrics": ["usage"]},
    "ste_table3_cifar10": STE_TABLE3,
    "nsvq_imagenet": {"rows": {"vq": "VQGAN", "transvq": "TransVQ", "nsvq": "NS-VQ"}, "axes": [],
                      "metrics": ["rfid"]},
}

CLAIMS = [
    {"id": "cvq_full_usage", "paper": "CVQ-VAE",
     "statement": "CVQ-VAE uses nearly all of a 1024-code codebook where VQ-VAE uses under half",
     "reproduction": "cvq_fig1_usage",
     "check": {"all": [{"row": {"quantizer": "cvq"}, "metric": "usage", "at_least": 0.95},
                       {"row": {"quantizer": "vq"}, "metric": "usage", "below": 0.5}]}},
    {"id": "nsvq_batch", "paper": "NS-VQ", "statement": "For standard VQ, larger batches give higher codebook usage",
     "reproduction": "nsvq_fig4_batch_size",
     "check": {"row": {"quantizer": "vq"}, "metric": "usage", "along": "batch_size", "trend": "increasing"}},
    {"id": "ste_l2_helps", "paper": "Straightening Out the STE", "statement": "l2 raises the perplexity",
     "reproduction": "ste_table3_cifar10",
     "check": {"metric": "perplexity", "higher": [{"quantizer": "vq_l2"}, {"quantizer": "vq"}]}},
    {"id": "nsvq_imagenet", "paper": "NS-VQ", "statement": "TransVQ has the lowest rFID on ImageNet-1K",
     "reproduction": "nsvq_imagenet", "measurable_at": ["paper"],
     "why_not_here": "ImageNet-1K is not bundled; runs only with configs/paper/nsvq_imagenet.yaml",
     "check": {"best": {"metric": "rfid", "row": {"quantizer": "transvq"}, "among": None, "lowest": True}}},
]


def cvq_summary(cvq=0.98, vq=0.3):
    return pd.DataFrame([row("VQ-VAE", "vq", usage=(vq, 0.05), mse=(0.004, 0.0001)),
                         row("CVQ-VAE", "cvq", usage=(cvq, 0.01), mse=(0.003, 0.0001))])


def batch_summary(means, quantizer="vq"):
    rows = [row("VQ", quantizer, usage=(m, 0.01)) | {"batch_size": b} for b, m in zip((256, 32, 64), means, strict=True)]
    rows.append(row("NS-VQ", "nsvq", usage=(1.0, 0.0)) | {"batch_size": 32})
    return pd.DataFrame(rows)


def ste_summary(l2=57.0, vq=14.0, std=1.0, seeds=3):
    return pd.DataFrame([row("VQVAE", "vq", seeds=seeds, perplexity=(vq, std), mse=(0.005, 0.0), lpips=(0.5, 0.0)),
                         row("VQVAE + l2", "vq_l2", seeds=seeds, perplexity=(l2, std), mse=(0.003, 0.0),
                             lpips=(0.4, 0.0))])


def test_real_claims_pass_the_check():
    check_claims(CLAIMS, REPRODUCTIONS)


def test_threshold_decided_by_the_t_interval():
    claim = CLAIMS[0]
    result = evaluate_claim(claim, cvq_summary(), {}, "mini")  # 98 +- 1 over 3 seeds: t(2) = 4.303
    assert result["status"] == "reproduced"
    assert ("usage: CVQ-VAE [cvq] 98.0% ± 1.0% (3 seeds), 95 % CI 95.5% to 100.5%; required at least 95.0%; "
            "per-seed values not recorded in this table") in result["evidence"]
    assert evaluate_claim(claim, cvq_summary(cvq=0.9), {}, "mini")["status"] == "not reproduced"
    assert evaluate_claim(claim, cvq_summary(vq=0.5), {}, "mini")["status"] == "inconclusive"  # 50 +- 12: either side
    assert evaluate_claim(claim, cvq_summary(vq=0.7), {}, "mini")["status"] == "not reproduced"
    # the interval contains the threshold: inconclusive, with the seeds that would decide it
    close = cvq_summary(cvq=0.96)
    close.loc[close["quantizer"] == "cvq", "usage_std"] = 0.02
    result = evaluate_claim(claim, close, {}, "mini")
    assert result["status"] == "inconclusive"
    assert result["seeds_to_decide"] == intervals.seeds_for_mean(0.96, 0.02, 0.95) and result["seeds_to_decide"] > 3
    assert f"about {result['seeds_to_decide']} seeds per row would decide it" in result["reason"]
    # one part n/a, the other true: not measurable, with the reason
    result = evaluate_claim(claim, cvq_summary(cvq=NAN), {"usage": "usage was not logged"}, "mini")
    assert result["status"] == "not measurable here"
    assert result["reason"] == "usage n/a: usage was not logged"
    # one part n/a, the other false: already not reproduced
    assert evaluate_claim(claim, cvq_summary(cvq=NAN, vq=0.8), {}, "mini")["status"] == "not reproduced"


def test_threshold_counts_the_seeds_that_meet_it():
    summary = cvq_summary(cvq=0.93)
    summary["usage_values"] = ["0.25;0.3;0.35", "0.99;0.97;0.83"]
    summary.loc[summary["quantizer"] == "cvq", "usage_std"] = 0.0872
    result = evaluate_claim(CLAIMS[0], summary, {}, "mini")
    assert "required at least 95.0%; 2 of 3 seeds meet it" in result["evidence"]
    assert "required below 50.0%; 3 of 3 seeds meet it" in result["evidence"]
    assert result["status"] == "inconclusive"


def test_one_seed_is_never_conclusive():
    one = cvq_summary(cvq=0.2).assign(seeds=1, usage_std=NAN)
    result = evaluate_claim(CLAIMS[0], one, {}, "mini")
    assert result["status"] == "inconclusive" and "single seed" in result["reason"]
    assert "no interval: one seed" in result["evidence"]


def test_any_condition():
    claim = dict(CLAIMS[0], check={"any": CLAIMS[0]["check"]["all"]})
    assert evaluate_claim(claim, cvq_summary(cvq=0.5, vq=0.3), {}, "mini")["status"] == "reproduced"
    assert evaluate_claim(claim, cvq_summary(cvq=0.5, vq=0.8), {}, "mini")["status"] == "not reproduced"
    assert evaluate_claim(claim, cvq_summary(cvq=NAN, vq=0.8), {}, "mini")["status"] == "not measurable here"


def test_failed_run_is_not_measurable():
    summary = cvq_summary()
    summary.loc[summary["quantizer"] == "cvq", "seeds"] = 0
    result = evaluate_claim(CLAIMS[0], summary, {}, "mini")
    assert result["status"] == "not measurable here"
    assert "every seed failed" in result["reason"]


def test_comparison_decided_by_the_welch_interval():
    claim = CLAIMS[2]
    result = evaluate_claim(claim, ste_summary(), {}, "mini")  # 57 +- 1 vs 14 +- 1, 3 seeds each: df 4, t 2.776
    assert result["status"] == "reproduced"
    assert result["evidence"] == ("perplexity: VQVAE + l2 [vq_l2] 57.0 ± 1.0 (3 seeds) vs VQVAE [vq] 14.0 ± 1.0 "
                                  "(3 seeds); difference +43.0 (95 % CI +40.7 to +45.3); claimed the first higher")
    # a gap inside the seed noise decides nothing, in either direction
    assert evaluate_claim(claim, ste_summary(l2=15.0, std=2.0), {}, "mini")["status"] == "inconclusive"
    assert evaluate_claim(claim, ste_summary(l2=13.0), {}, "mini")["status"] == "inconclusive"
    assert evaluate_claim(claim, ste_summary(l2=10.0), {}, "mini")["status"] == "not reproduced"
    # an exact tie (every seed the same on both sides) is not "higher"
    assert evaluate_claim(claim, ste_summary(l2=14.0, std=0.0), {}, "mini")["status"] == "not reproduced"
    assert evaluate_claim(dict(claim, check=dict(claim["check"], margin=5.0)), ste_summary(l2=25.0), {},
                          "mini")["status"] == "reproduced"
    assert evaluate_claim(dict(claim, check=dict(claim["check"], margin=50.0)), ste_summary(), {},
                          "mini")["status"] == "not reproduced"
    lower = dict(claim, check={"metric": "perplexity", "lower": [{"quantizer": "vq"}, {"quantizer": "vq_l2"}]})
    assert evaluate_claim(lower, ste_summary(), {}, "mini")["status"] == "reproduced"
    result = evaluate_claim(lower, ste_summary(seeds=1, std=NAN), {}, "mini")
    assert result["status"] == "inconclusive" and "no interval: one seed" in result["evidence"]
    result = evaluate_claim(claim, ste_summary(l2=NAN), {"perplexity": "codes not logged"}, "mini")
    assert (result["status"], result["reason"]) == ("not measurable here", "perplexity n/a: codes not logged")


def test_trend_needs_every_step_to_clear_its_interval():
    claim = CLAIMS[1]
    result = evaluate_claim(claim, batch_summary([0.9, 0.3, 0.5]), {}, "mini")  # batch 256, 32, 64
    assert result["status"] == "reproduced"
    assert "usage of VQ [vq] along batch_size: 32: 30.0% ± 1.0%, 64: 50.0% ± 1.0%, 256: 90.0% ± 1.0%" \
        in result["evidence"]
    assert "steps: 32 to 64: difference +20.0%" in result["evidence"]
    assert evaluate_claim(claim, batch_summary([0.9, 0.3, 0.3]), {}, "mini")["status"] == "inconclusive"  # flat
    assert evaluate_claim(claim, batch_summary([0.4, 0.3, 0.5]), {}, "mini")["status"] == "not reproduced"
    down = dict(claim, check=dict(claim["check"], trend="decreasing"))
    assert evaluate_claim(down, batch_summary([0.1, 0.3, 0.2]), {}, "mini")["status"] == "reproduced"
    result = evaluate_claim(claim, batch_summary([0.9, NAN, 0.5]), {"usage": "x"}, "mini")
    assert result["status"] == "not measurable here"
    one = batch_summary([0.9, 0.3, 0.5]).iloc[[0, 3]]
    result = evaluate_claim(claim, one, {}, "mini")
    assert result["status"] == "not measurable here" and "two or more batch_size" in result["reason"]


def test_best():
    claim = dict(CLAIMS[3], measurable_at=["mini"])
    summary = pd.DataFrame([row("VQGAN", "vq", rfid=(1.06, 0.1)), row("TransVQ", "transvq", rfid=(0.43, 0.02)),
                            row("NS-VQ", "nsvq", rfid=(0.56, 0.05))])
    result = evaluate_claim(claim, summary, {}, "mini")
    assert result["status"] == "reproduced"
    assert result["evidence"].startswith("rfid: TransVQ [transvq] 0.43 ± 0.02 (3 seeds), claimed lowest of 3 rows")
    summary.loc[2, "rfid_mean"] = 0.40
    assert evaluate_claim(claim, summary, {}, "mini")["status"] == "inconclusive"
    summary.loc[2, "rfid_mean"] = 0.20
    assert evaluate_claim(claim, summary, {}, "mini")["status"] == "not reproduced"
    among = dict(claim, check={"best": {"metric": "rfid", "row": {"quantizer": "transvq"},
                                        "among": {"row": "TransVQ"}, "highest": True}})
    assert evaluate_claim(among, summary, {}, "mini")["status"] == "reproduced"  # alone among itself


def test_intervals_on_known_numbers():
    mean = intervals.mean_interval(0.5, 0.1, 4)  # t(3) = 3.182
    assert (round(mean.low, 4), round(mean.high, 4)) == (0.3409, 0.6591)
    diff = intervals.difference_interval(1.0, 0.1, 5, 0.8, 0.2, 3)  # Welch df 2.54
    assert round(diff.estimate, 6) == 0.2 and diff.low < 0 < diff.high
    assert intervals.side(intervals.Interval(1, 1, 1, "mean"), 1.0, above=True, strict=False) is True
    assert intervals.side(intervals.Interval(1, 1, 1, "mean"), 1.0, above=True, strict=True) is False
    assert intervals.seeds_for_mean(0.5, 0.0, 0.4) == 2
    assert intervals.seeds_for_mean(0.5, 0.1, 0.5) is None  # the mean sits on the bound: no seed count decides
    assert not intervals.mean_interval(0.5, math.nan, 1).known


def test_not_measurable_scale_and_missing_reproduction():
    result = evaluate_claim(CLAIMS[3], pd.DataFrame(), {}, "mini")
    assert result["status"] == "not measurable here"
    assert result["reason"] == ("measurable only at paper scale: ImageNet-1K is not bundled; runs only with "
                                "configs/paper/nsvq_imagenet.yaml")
    result = evaluate_claim(CLAIMS[0], None, {}, "mini")
    assert (result["status"], result["reason"]) == (
        "not run in this configuration",
        "reproduction cvq_fig1_usage is not built by this configuration (its study is not in run_studies)")


def curve(quantizer, usages, seed=0, start=500):
    return [{"step": start * (i + 1), "split": "train", "usage": u, "perplexity": 1.0, "mse": 0.01, "codes_used": 1,
             "tokens": 1, "quantizer": quantizer, "codebook_size": 512, "code_dim": 64, "seed": seed}
            for i, u in enumerate(usages)]


SETTLED = {"settled": {"study": "conv", "row": {"quantizer": "cvq"}, "metric": "usage", "split": "train",
                       "last": 3, "within": 0.02}, "why": "a rising curve would make the verdict premature"}


def test_settled_check_reads_the_curves_and_gates_the_verdict():
    claim = dict(CLAIMS[0], evidence=[SETTLED])
    steady = pd.DataFrame(curve("cvq", [0.5, 0.97, 0.98, 0.98]) + curve("cvq", [0.5, 0.96, 0.97, 0.975], seed=1))
    files = ResultFiles({"cvq_fig1_usage": cvq_summary()}, {}, {"conv": steady})
    result = evaluate_claim(claim, cvq_summary(), {}, "mini", files)
    assert result["status"] == "reproduced"
    (check,) = result["checks"]
    assert (check["label"], check["status"]) == ("settled: usage (train split) in conv", "settled")
    assert "seed 0: 98.0% at step 2000, moved 1.0% over steps 1000-2000" in check["text"]
    assert "seed 1: 97.5% at step 2000, moved 1.5%" in check["text"] and check["why"] == SETTLED["why"]
    rising = pd.DataFrame(curve("cvq", [0.5, 0.7, 0.85, 0.98]))
    result = evaluate_claim(claim, cvq_summary(), {}, "mini", ResultFiles({}, {}, {"conv": rising}))
    assert result["status"] == "inconclusive" and "have not settled" in result["reason"]
    assert result["checks"][0]["status"] == "not settled"
    result = evaluate_claim(claim, cvq_summary(), {}, "mini", ResultFiles({}, {}, {}))
    assert result["status"] == "reproduced" and result["checks"][0]["status"] == "not measurable here"


def test_sensitivity_check_evaluates_another_reproduction():
    check = {"reproduction": "nsvq_fig4_batch_size", "label": "another seed set",
             "check": {"row": {"quantizer": "vq"}, "metric": "usage", "along": "batch_size", "trend": "increasing"}}
    claim = dict(CLAIMS[0], evidence=[{"sensitivity": check}])
    files = ResultFiles({"nsvq_fig4_batch_size": batch_summary([0.9, 0.3, 0.5])}, {}, {})
    (result,) = evaluate_claim(claim, cvq_summary(), {}, "mini", files)["checks"]
    assert (result["label"], result["status"]) == ("sensitivity: another seed set", "reproduced")
    assert result["text"].startswith("`nsvq_fig4_batch_size`: usage of VQ [vq] along batch_size: 32: 30.0%")
    files = ResultFiles({"nsvq_fig4_batch_size": None}, {}, {})
    (result,) = evaluate_claim(claim, cvq_summary(), {}, "mini", files)["checks"]
    assert result["status"] == "not measurable here"


def test_selector_must_match_exactly_one_row():
    summary = pd.concat([cvq_summary(), cvq_summary().assign(codebook_size=1024)], ignore_index=True)
    with pytest.raises(ValueError, match=r"claim cvq_full_usage: selector \{'quantizer': 'cvq'\} must match exactly "
                                         r"one row of the summary, matched 2"):
        evaluate_claim(CLAIMS[0], summary, {}, "mini")
    narrow = dict(CLAIMS[0], check={"row": {"quantizer": "cvq", "codebook_size": 1024}, "metric": "usage",
                                    "at_least": 0.95})
    assert evaluate_claim(narrow, summary, {}, "mini")["status"] == "reproduced"
    gone = dict(CLAIMS[0], check={"row": {"row": "SQ-VAE"}, "metric": "usage", "at_least": 0.95})
    absent = evaluate_claim(gone, summary, {}, "smoke")  # a grid point a smaller scale does not train
    assert absent["status"] == "not measurable here"
    assert "not trained at this scale" in absent["reason"]


def _claims_with(i, **changes):
    claims = copy.deepcopy(CLAIMS)
    for key, value in changes.items():
        if value is KeyError:
            del claims[i][key]
        else:
            claims[i][key] = value
    return claims


@pytest.mark.parametrize(("i", "changes", "message"), [
    (1, {"id": "cvq_full_usage"}, r"claims\[1\] \(cvq_full_usage\)\.id: 'cvq_full_usage' is already the id of claims\[0\]"),
    (0, {"reproduction": "cvq_fig9"}, r"claims\[0\] \(cvq_full_usage\)\.reproduction: 'cvq_fig9' is not in reproductions"),
    (0, {"statement": KeyError}, r"claims\[0\] \(cvq_full_usage\)\.statement: missing"),
    (0, {"colour": "red"}, r"claims\[0\] \(cvq_full_usage\)\.colour: unknown key"),
    (3, {"why_not_here": KeyError}, r"claims\[3\] \(nsvq_imagenet\)\.why_not_here: required with measurable_at"),
    (0, {"check": {"all": [{"row": {"quantizer": "cvq"}, "metric": "rfid", "at_least": 1}]}},
     r"claims\[0\] \(cvq_full_usage\)\.check\.all\[0\]\.metric: 'rfid' is not measured by reproductions\.cvq_fig1_usage"),
    (0, {"check": {"row": {"quantizer": "cvq"}, "metric": "usage", "greater_than": 1}},
     r"claims\[0\] \(cvq_full_usage\)\.check\.greater_than: not a key of a threshold condition"),
    (0, {"check": {"row": {"quantizer": "cvq"}, "metric": "usage", "at_least": 1, "below": 2}},
     r"check: a threshold needs exactly one of"),
    (0, {"check": {"row": {"quantizer": "sqvae"}, "metric": "usage", "at_least": 1}},
     r"check\.row\.quantizer: 'sqvae' is not one of the rows of reproductions\."),
    (0, {"check": {"row": {"colour": "red"}, "metric": "usage", "at_least": 1}}, r"check\.row\.colour: not a summary column"),
    (0, {"check": {"none": []}}, r"claims\[0\] \(cvq_full_usage\)\.check: unknown condition \['none'\]"),
    (1, {"check": {"row": {"quantizer": "vq"}, "metric": "usage", "along": "codebook_size", "trend": "increasing"}},
     r"claims\[1\] \(nsvq_batch\)\.check\.along: 'codebook_size' is not an axis of reproductions\.nsvq_fig4_batch_size"),
    (1, {"check": {"row": {"quantizer": "vq"}, "metric": "usage", "along": "batch_size", "trend": "up"}},
     r"check\.trend: expected one of \['increasing', 'decreasing'\]"),
    (2, {"check": {"metric": "perplexity", "higher": [{"quantizer": "vq"}]}}, r"check\.higher: expected two selectors"),
    (3, {"check": {"best": {"metric": "rfid", "row": {"quantizer": "transvq"}}}},
     r"check\.best: say which end is best"),
    (0, {"check": {"all": []}}, r"check\.all: expected a non-empty list"),
    (0, {"check": {"row": {"quantizer": {"not": "a scalar"}}, "metric": "usage", "at_least": 0.9}},
     r"check\.row\.quantizer: expected a name \(a preset or the paper's row label\), got \{'not': 'a scalar'\}"),
    (0, {"note": "CVQ-VAE used 97.6% of the codes"}, r"claims\[0\] \(cvq_full_usage\)\.note: '97.6%' states a result"),
    (0, {"evidence": [{"settled": {"study": "conv", "within": 0.02}, "why": "it moved 3 %"}]},
     r"evidence\[0\]\.why: '3 %' states a result"),
    (0, {"evidence": [{"settled": {"study": "elsewhere", "within": 0.02}}]},
     r"evidence\[0\]\.settled\.study: 'elsewhere' is not a convergence study"),
    (0, {"evidence": [{"settled": {"study": "conv"}}]}, r"evidence\[0\]\.settled\.within: expected"),
    (0, {"evidence": [{"settled": {"study": "conv", "within": 0.02, "last": 1}}]}, r"settled\.last: expected"),
    (0, {"evidence": [{"seeds": {}}]}, r"evidence\[0\]: expected exactly one of \['sensitivity', 'settled'\]"),
    (0, {"evidence": [{"sensitivity": {"reproduction": "nowhere", "check": {}}}]},
     r"sensitivity\.reproduction: 'nowhere' is not in reproductions"),
    (0, {"evidence": [{"sensitivity": {"reproduction": "cvq_fig1_usage",
                                       "check": {"row": {"quantizer": "cvq"}, "metric": "rfid", "at_least": 1}}}]},
     r"sensitivity\.check\.metric: 'rfid' is not measured by reproductions\.cvq_fig1_usage"),
])
def test_check_claims_errors(i, changes, message):
    with pytest.raises(ValueError, match=message):
        check_claims(_claims_with(i, **changes), REPRODUCTIONS, curves={"conv"})


def test_claims_markdown():
    files = ResultFiles({"cvq_fig1_usage": cvq_summary(), "nsvq_fig4_batch_size": batch_summary([0.9, 0.5, 0.3]),
                         "ste_table3_cifar10": ste_summary(), "nsvq_imagenet": None}, {"cvq_fig1_usage": {}}, {})
    claims = [dict(CLAIMS[0], note="CVQ-VAE here is closest anchors.", evidence=[SETTLED]), *CLAIMS[1:]]
    md = render_claims_markdown(evaluate_claims(claims, files, "mini"), "mini")
    assert md.startswith("# ")
    assert "This run is at **mini** scale; every status below applies to that scale only." in md
    assert "95 % Student-t interval on the mean over seeds" in md and "95 % Welch interval" in md
    assert "| Paper | Reproduced | Not reproduced | Inconclusive | Not measurable here | Claims |" in md
    assert "| CVQ-VAE | 1 | 0 | 0 | 0 | 1 |" in md
    assert "| NS-VQ | 0 | 1 | 0 | 1 | 2 |" in md
    assert "| Straightening Out the STE | 1 | 0 | 0 | 0 | 1 |" in md
    assert "| **All** | 2 | 1 | 0 | 1 | 4 |" in md
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == ["## CVQ-VAE", "## NS-VQ", "## Straightening Out the STE"]
    assert ("| TransVQ has the lowest rFID on ImageNet-1K (`nsvq_imagenet`) | not measurable here | Not measurable: "
            "measurable only at paper scale: ImageNet-1K is not bundled; runs only with "
            "configs/paper/nsvq_imagenet.yaml | `nsvq_imagenet` |") in md
    assert "### `cvq_full_usage`: reproduced\n\nCVQ-VAE here is closest anchors.\n\n- **settled: usage" in md
    assert md == render_claims_markdown(evaluate_claims(claims, files, "mini"), "mini")


def _results_folder(tmp_path, cvq_usage, curve_usages):
    import json

    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True, exist_ok=True)
    (results / "metrics").mkdir(exist_ok=True)
    summary = cvq_summary(cvq=cvq_usage)
    summary["usage_values"] = [";".join(["0.3"] * 3), ";".join([str(cvq_usage)] * 3)]
    summary.loc[summary["quantizer"] == "cvq", "usage_std"] = 0.0
    summary.to_csv(results / "tables" / "cvq_fig1_usage.csv", index=False)
    (results / "metrics" / "cvq_fig1_usage.json").write_text(json.dumps({"not_available": {}}))
    pd.DataFrame(curve("cvq", curve_usages)).to_csv(results / "tables" / "conv_over_steps.csv", index=False)
    return results


def test_claims_pages_read_the_built_tables(tmp_path):
    """The claims rule's files from results/: tables read only for the reproductions built, index in params order."""
    import json

    from vqrepro.claims import write_claims_pages

    results = _results_folder(tmp_path, 0.98, [0.98, 0.98, 0.98])
    shown = {"cvq_fig1_usage": {"paper": "CVQ-VAE", "reproduces": "Fig. 1", "study": "cvq"},
             "nsvq_imagenet": {"paper": "NS-VQ", "reproduces": "Table 2", "study": "imagenet"}}
    settings = {"claims": [dict(CLAIMS[0], evidence=[SETTLED]), CLAIMS[3]], "built": ["cvq_fig1_usage"],
                "curves": ["conv"], "scale": "mini", "reproductions": shown}  # params.yaml's order, as the rule keeps it
    pages = [tmp_path / name for name in ("claims.md", "index.md", "counts.json")]
    write_claims_pages(settings, results, *pages)
    claims_md, index_md, counts = (page.read_text() for page in pages)
    assert "| CVQ-VAE | 1 | 0 | 0 | 0 | 1 |" in claims_md and (tmp_path / "claims.html").exists()
    assert index_md.index("| CVQ-VAE |") < index_md.index("| NS-VQ |")  # the order of params.yaml
    assert "| NS-VQ | Table 2 | not run in this configuration | - | `imagenet` |" in index_md
    assert json.loads(counts)["all"] == {"reproduced": 1, "not reproduced": 0, "inconclusive": 0,
                                         "not measurable here": 1}
    write_claims_pages({**settings, "reproductions": dict(reversed(shown.items()))}, results, *pages[:2])
    assert pages[1].read_text().index("| NS-VQ |") < pages[1].read_text().index("| CVQ-VAE |")


def test_claims_of_studies_a_configuration_does_not_run_are_listed_apart_and_never_counted(tmp_path):
    """A paper config that runs one paper's studies: the others' claims are neither verdicts nor 'not measurable'."""
    from vqrepro.claims import write_claims_pages

    results = _results_folder(tmp_path, 0.98, [0.98, 0.98, 0.98])
    shown = {"cvq_fig1_usage": {"paper": "CVQ-VAE", "reproduces": "Fig. 1", "study": "cvq"},
             "nsvq_table2": {"paper": "NS-VQ", "reproduces": "Table 2", "study": "nsvq_grid"}}
    other = {"id": "nsvq_beats_vq", "paper": "NS-VQ", "statement": "NS-VQ beats VQ", "reproduction": "nsvq_table2",
             "check": {"metric": "usage", "higher": [{"quantizer": "nsvq"}, {"quantizer": "vq"}]}}
    settings = {"claims": [dict(CLAIMS[0], evidence=[SETTLED]), other], "built": ["cvq_fig1_usage"],
                "curves": ["conv"], "scale": "paper", "reproductions": shown}
    pages = [tmp_path / name for name in ("claims.md", "index.md", "counts.json")]
    write_claims_pages(settings, results, *pages)
    claims_md, index_md, counts = (page.read_text() for page in pages)
    assert "| **All** | 1 | 0 | 0 | 0 | 1 |" in claims_md and "## NS-VQ" not in claims_md
    assert "## Not run in this configuration (1)" in claims_md
    assert "| NS-VQ beats VQ (`nsvq_beats_vq`) | NS-VQ | `nsvq_table2` |" in claims_md
    assert json.loads(counts)["not_run"] == 1 and sum(json.loads(counts)["all"].values()) == 1
    assert "| NS-VQ | Table 2 | not run in this configuration | - | `nsvq_grid` |" in index_md


def test_the_page_follows_edited_result_files(tmp_path):
    """Every number on the claims page comes from the result files: edit them, and the page follows."""
    from vqrepro.claims import write_claims_pages

    settings = {"claims": [dict(CLAIMS[0], evidence=[SETTLED])], "built": ["cvq_fig1_usage"], "curves": ["conv"],
                "scale": "mini", "reproductions": {"cvq_fig1_usage": {"paper": "CVQ-VAE", "reproduces": "Fig. 1",
                                                                      "study": "cvq"}}}
    page = tmp_path / "claims.md"
    write_claims_pages(settings, _results_folder(tmp_path, 0.98, [0.97, 0.98, 0.98]), page, tmp_path / "index.md")
    before = page.read_text()
    assert "CVQ-VAE [cvq] 98.0% ± 0.0% (3 seeds)" in before and "3 of 3 seeds meet it" in before
    assert "| reproduced |" in before and "**settled: usage (train split) in conv**: settled" in before
    write_claims_pages(settings, _results_folder(tmp_path, 0.9, [0.97, 0.98, 0.98]), page, tmp_path / "index.md")
    after = page.read_text()
    assert "CVQ-VAE [cvq] 90.0% ± 0.0% (3 seeds)" in after and "0 of 3 seeds meet it" in after
    assert "| not reproduced |" in after and "98.0%" not in after.split("## CVQ-VAE")[1].split("###")[0]
    write_claims_pages(settings, _results_folder(tmp_path, 0.98, [0.5, 0.7, 0.98]), page, tmp_path / "index.md")
    moving = page.read_text()
    assert "| inconclusive |" in moving and "**settled: usage (train split) in conv**: not settled" in moving
    assert "moved 48.0% over steps 500-1500" in moving


def test_claim_counts_match_the_statuses():
    from vqrepro.claims import claim_counts

    claim = CLAIMS[0]
    files = ResultFiles({claim["reproduction"]: cvq_summary(cvq=0.9)}, {}, {})
    results = evaluate_claims([claim, dict(claim, id="other")], files, "mini")
    counts = claim_counts(results, "mini")
    assert counts["all"] == {"reproduced": 0, "not reproduced": 2, "inconclusive": 0, "not measurable here": 0}
    assert counts["papers"][claim["paper"]]["not reproduced"] == 2 and counts["scale"] == "mini"


def test_a_one_row_selector_matching_several_grid_rows_is_named():
    grid = [{"row": "CVQ-VAE", "quantizer": "cvq", "codebook_size": k, "code_dim": 64, "batch_size": None}
            for k in (256, 1024)] + [{"row": "VQ-VAE", "quantizer": "vq", "codebook_size": 1024, "code_dim": 64,
                                      "batch_size": None}]
    with pytest.raises(ValueError, match=r"claims\[0\] \(cvq_full_usage\)\.check\.all\[0\]\.row: \{'quantizer': 'cvq'\} "
                                         r"matches 2 rows of reproductions\.cvq_fig1_usage .*add codebook_size"):
        check_claims(CLAIMS, REPRODUCTIONS, rows={"cvq_fig1_usage": grid})
    narrowed = copy.deepcopy(CLAIMS)
    narrowed[0]["check"]["all"][0]["row"]["codebook_size"] = 1024
    check_claims(narrowed, REPRODUCTIONS, rows={"cvq_fig1_usage": grid})
    # a grid point a smaller scale does not train matches nothing: decided later as not measurable, not refused
    check_claims(narrowed, REPRODUCTIONS, rows={"cvq_fig1_usage": grid[:1] + grid[2:]})
