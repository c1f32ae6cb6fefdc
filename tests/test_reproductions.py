"""A paper table rebuilt from runs: layout, order, failures, figures, the paper comparison; and the config checks."""
import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from vqrepro import config, report

PAPER_DIR = config.paper_numbers_dir()
pytestmark = pytest.mark.skipif(not PAPER_DIR.is_dir(), reason=f"{PAPER_DIR} (the papers' numbers) is not beside the repository")


def fake_runs(tmp_path: Path, keys, usage, fail=()):
    """metrics.json (and a train_log.csv) for each grid point; usage(key) gives its codebook usage."""
    files = []
    for key in keys:
        run = tmp_path / "runs" / key.path
        run.mkdir(parents=True, exist_ok=True)
        files.append(str(run / "metrics.json"))
        if (key.quantizer, key.seed) in fail:
            (run / "failure.json").write_text(json.dumps({"error": "NonFiniteLossError", "message": "loss is nan", "step": 3}))
            continue
        u = usage(key)
        (run / "metrics.json").write_text(json.dumps({
            "metrics": {"mse": 0.01 / (1 + u), "psnr": 20.0, "ssim": 0.5, "usage": u, "perplexity": 100 * u,
                        "lpips": None, "rfid": None},
            "missing": {"lpips": "no AlexNet weights here", "rfid": "no Inception weights here"}}))
        (run / "train_log.csv").write_text("step,loss,recon,codebook,batch_usage\n"
                                           + "".join(f"{s},1.0,0.5,{0.1 / s},{u * s / 20}\n" for s in range(1, 21)))
    return files


def nsvq_config(params):
    cfg = copy.deepcopy(params)
    cfg["studies"]["nsvq_grid"]["seeds"] = [0, 1]
    cfg["studies"]["nsvq_grid"]["more_seeds"] = None  # two seeds for every row, whatever params.yaml lists
    return cfg


def build(cfg, name, tmp_path, usage, fail=()):
    keys = config.reproduction_grid(cfg, name)
    files = fake_runs(tmp_path, keys, usage, fail)
    report.build_reproduction_report(name, cfg["reproductions"][name], files, keys, tmp_path / "results", "mini",
                                     "a test setting", PAPER_DIR)
    return tmp_path / "results"


def test_pivoted_table_keeps_the_papers_row_order_and_one_column_group_per_k(params, tmp_path):
    cfg = nsvq_config(params)
    results = build(cfg, "nsvq_table2", tmp_path, usage=lambda k: 64 / k.codebook_size / (1 + k.seed))
    table = (results / "tables" / "nsvq_table2.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert header.startswith("| Method | Seeds | rFID K=64 | Usage (%) K=64 | Usage, train (%) K=64 | MSE (1e-3) K=64 | rFID K=1024 |")
    rows = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["VQGAN-FC", "VQVAE2", "VQGAN-EMA", "SimVQ", "NS-VQ", "TransVQ"]  # params.yaml's order = the paper's
    # usage at K=64 is 100% for seed 0 and 50% for seed 1: mean 75.0 ± 35.4
    assert "| VQGAN-FC | 2 | n/a | 75.0 ± 35.4 |" in table
    assert "n/a (rfid): no Inception weights here." in table
    assert "Measured at mini scale: a test setting." in table
    csv = pd.read_csv(results / "tables" / "nsvq_table2.csv")
    assert list(csv["quantizer"].unique()) == ["vqgan_fc", "vqvae2", "ema", "simvq", "nsvq", "transvq"]
    assert set(csv["code_dim"]) == {3}  # select: code_dim [3]
    assert (results / "figures" / "nsvq_table2_figure.png").stat().st_size > 0
    assert (results / "figures" / "nsvq_table2_figure.pdf").stat().st_size > 0


def test_paper_comparison_puts_ours_beside_the_published_number(params, tmp_path):
    cfg = nsvq_config(params)
    results = build(cfg, "nsvq_table2", tmp_path, usage=lambda k: 0.5)
    comparison = (results / "paper_vs_repro" / "nsvq_table2.md").read_text()
    # Table 2, VQVAE2 at K = 1024: the paper's usage is 0.40; ours 0.50 -> difference +0.10
    line = next(line for line in comparison.splitlines() if line.startswith("| VQVAE2 | 1024"))
    assert "0.40" in line and "+0.10" in line
    assert "mini scale" in comparison


def test_a_failed_grid_point_is_marked_not_hidden(params, tmp_path):
    cfg = nsvq_config(params)
    results = build(cfg, "nsvq_table4", tmp_path, usage=lambda k: 0.5, fail={("transvq", 0), ("transvq", 1)})
    table = (results / "tables" / "nsvq_table4.md").read_text()
    assert "| TransVQ | 1024 | 64 | 0 | failed |" in table
    assert "Failed: transvq" in table and "loss is nan" in table
    metrics = json.loads((results / "metrics" / "nsvq_table4.json").read_text())
    assert metrics["configurations"]["transvq_K1024_D64"]["usage"] is None
    assert metrics["not_available"]["rfid"] == "no Inception weights here"


def test_training_curves_figure_reads_the_train_logs(params, tmp_path):
    cfg = copy.deepcopy(params)
    results = build(cfg, "ste_collapse_dynamics", tmp_path, usage=lambda k: 0.3)
    assert (results / "figures" / "ste_collapse_dynamics_figure.png").stat().st_size > 0
    summary = pd.read_csv(results / "tables" / "ste_collapse_dynamics.csv")
    assert math.isclose(summary["usage_mean"].iloc[0], 0.3)


def test_every_reproduction_selects_grid_points_of_its_study(params):
    for name, spec in params["reproductions"].items():
        keys = config.reproduction_grid(params, name)
        assert keys, name
        assert {k.quantizer for k in keys} == set(spec["rows"]), name
        assert all(k.study == spec["study"] for k in keys)


BAD_REPRODUCTIONS = [
    ("row not in its study", ["rows", "vq_typo"], "VQ", "reproductions.cvq_fig1_usage.rows.vq_typo: not among studies.cvq_usage.quantizers"),
    ("selected value not in the grid", ["select"], {"codebook_size": [512]},
     "reproductions.cvq_fig1_usage.select.codebook_size: 512 is not in studies.cvq_usage.codebook_sizes"),
    ("pivot not an axis", ["pivot"], "codebook_size", "reproductions.cvq_fig1_usage.pivot: 'codebook_size' must be one of"),
    ("accuracy of an autoencoder", ["metrics"], ["usage", "accuracy"],
     "reproductions.cvq_fig1_usage.metrics: 'accuracy' is not measured by a reconstruction study"),
    ("unknown paper column", ["paper_numbers", "metrics"], {"usage": ["usage_pct", 1.0]}, "reproductions.cvq_fig1_usage.paper_numbers"),
]


@pytest.mark.parametrize("label,path,value,message", BAD_REPRODUCTIONS, ids=[b[0] for b in BAD_REPRODUCTIONS])
def test_a_malformed_reproduction_names_its_key(params_copy, label, path, value, message):
    target = params_copy["reproductions"]["cvq_fig1_usage"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config.check(params_copy)


def test_malformed_claims_and_toys_name_their_key(params_copy):
    bad = copy.deepcopy(params_copy)
    bad["claims"][0]["reproduction"] = "nope"
    with pytest.raises(config.ConfigError, match=r"claims\[0\] \(cvq_full_usage\)\.reproduction"):
        config.check(bad)
    bad = copy.deepcopy(params_copy)
    bad["toys"]["nsvq_translation"] = {"stepz": 3}
    with pytest.raises(config.ConfigError, match=r"toys\.nsvq_translation: .*stepz"):
        config.check(bad)


def test_a_classification_study_needs_a_classifier_model(params_copy):
    params_copy["studies"]["ste_classify"]["model"] = "mini_digits"
    with pytest.raises(config.ConfigError, match=r"studies\.ste_classify\.model: 'mini_digits' is an autoencoder"):
        config.check(params_copy)


def test_a_study_to_run_without_its_data_is_an_error(params_copy, tmp_path):
    params_copy["datasets"]["cifar10"]["root"] = None
    params_copy["studies"]["ste_recon"]["dataset"] = "cifar10"
    with pytest.raises(config.ConfigError, match=r"datasets\.cifar10\.root is not set, and studies\.ste_recon needs cifar10"):
        config.check_data_available(params_copy, ["ste_recon"], "params.yaml", tmp_path / "data")
    params_copy["datasets"]["cifar10"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(config.ConfigError, match=r"datasets\.cifar10\.root: .*nowhere is not a folder"):
        config.check_data_available(params_copy, ["ste_recon"], "params.yaml", tmp_path / "data")
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "data" / "cifar10" / "train.pt").write_bytes(b"")  # prepared already: the root is not needed
    config.check_data_available(params_copy, ["ste_recon"], "params.yaml", tmp_path / "data")


def test_batch_size_axis_is_part_of_the_run_path(params):
    keys = config.grid(params, "nsvq_batch")
    assert {k.point for k in keys} == {"K64_D64_B4", "K64_D64_B16", "K64_D64_B64", "K64_D64_B256"}
    assert config.RunKey.parse_point("K64_D64_B16") == (64, 64, 16)
    assert config.RunKey.parse_point("K64_D8") == (64, 8, None)
    settings = config.train_settings(params, keys[0])
    assert settings["training"]["batch_size"] == keys[0].batch_size


def test_seeds_note_says_which_configurations_have_more_seeds():
    from vqrepro.report import seeds_note

    def keys(counts):
        return [{"quantizer": q, "codebook_size": 64, "code_dim": 3, "seed": s} for q, n in counts.items() for s in range(n)]

    assert seeds_note(keys({"vq": 3, "cvq": 3}), "st").endswith("over seeds (3 seeds)")
    assert seeds_note([], "st").endswith("over seeds (0 seeds)")  # no row trained at this scale
    mixed = seeds_note(keys({"vq": 2, "simvq": 5}), "st")
    assert "(2 seeds per configuration; 5 for those listed in studies.st.more_seeds" in mixed
    assert "studies.st.more_seeds" in mixed


def test_a_codebook_larger_than_the_test_split_can_show_is_flagged(params, tmp_path):
    """K = 1024 codes over 5,760 test tokens (5.6 a code): the table says test-split usage undercounts there."""
    cfg = nsvq_config(params)
    keys = config.reproduction_grid(cfg, "nsvq_table2")
    files = fake_runs(tmp_path, keys, lambda key: 0.5)
    for path, key in zip(files, keys):
        result = json.loads(Path(path).read_text())
        result["tokens"] = {"test": 5760, "train": 23000}
        Path(path).write_text(json.dumps(result))
    report.build_reproduction_report("nsvq_table2", cfg["reproductions"]["nsvq_table2"], files, keys,
                                     tmp_path / "results", "mini", "test setting", PAPER_DIR)
    table = (tmp_path / "results" / "tables" / "nsvq_table2.md").read_text()
    assert "Test-split usage at K = 1024 counts 5,760 tokens, 5.6 per code" in table
    assert "the training-split column counts 23,000" in table
    assert "K = 64 counts" not in table  # 90 tokens a code: enough


def test_a_pivoted_row_gives_each_column_groups_seed_count_when_they_differ(params, tmp_path):
    cfg = nsvq_config(params)
    cfg["studies"]["nsvq_grid"]["more_seeds"] = {"seeds": [0, 1, 2, 3, 4], "points": [
        {"quantizer": "transvq", "codebook_size": 64, "code_dim": 64}]}
    table = (build(cfg, "nsvq_table3", tmp_path, lambda key: 0.5) / "tables" / "nsvq_table3.md").read_text()
    assert "| TransVQ | 5 / 2 |" in table  # K = 64 with five seeds, K = 1024 with two
    assert "| NS-VQ | 2 |" in table
    assert "2 seeds per configuration; 5 for those listed in studies.nsvq_grid.more_seeds" in table
