"""params.yaml validation: every malformed file gives one message naming the key."""
import subprocess
import sys

import pytest
import yaml

from vqrepro import config
from vqrepro.config import ConfigError


def test_repository_params_are_valid(params_copy):
    config.check(params_copy)
    assert len(config.grid(params_copy, "ste_recon")) == 11 * 3  # presets x seeds at K = 1024, D = 16


def test_more_seeds_give_only_the_matching_configurations_more_runs(params_copy):
    study = {**params_copy["studies"]["nsvq_grid"], "seeds": [0, 1],
             "more_seeds": {"seeds": [0, 1, 2, 3, 4], "points": [{"quantizer": "simvq", "code_dim": 3},
                                                               {"quantizer": "transvq", "codebook_size": 64, "code_dim": 64}]}}
    seeds = {}
    for key in config.study_grid("s", study):
        seeds.setdefault((key.quantizer, key.codebook_size, key.code_dim), []).append(key.seed)
    five = {c for c, s in seeds.items() if s == [0, 1, 2, 3, 4]}
    assert five == {("simvq", 64, 3), ("simvq", 1024, 3), ("transvq", 64, 64)}
    assert all(s == [0, 1] for c, s in seeds.items() if c not in five)
    # null (a paper config dropping the mini scale's list) trains every configuration with `seeds`
    assert {k.seed for k in config.study_grid("s", {**study, "more_seeds": None})} == {0, 1}


def _set(path, value):
    def edit(cfg):
        *parents, last = path
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _delete(path):
    def edit(cfg):
        *parents, last = path
        node = cfg
        for p in parents:
            node = node[p]
        del node[last]
    return edit


MALFORMED = [
    ("unknown top-level key", _set(["trainng"], {}), "trainng"),
    ("misspelt training key", _set(["training", "mini", "stpes"], 10), "training.mini"),
    ("wrong type", _set(["training", "mini", "batch_size"], "64"), "training.mini.batch_size"),
    ("non-positive steps", _set(["training", "mini", "steps"], 0), "training.mini.steps"),
    ("non-positive codebook size", _set(["studies", "ste_recon", "codebook_sizes"], [16, -4]),
     "studies.ste_recon.codebook_sizes[1]"),
    ("zero code dimension", _set(["studies", "ste_recon", "code_dims"], [0]), "studies.ste_recon.code_dims[0]"),
    ("unknown quantizer preset in study", _set(["studies", "ste_recon", "quantizers"], ["vq", "cvq_typo"]),
     "studies.ste_recon.quantizers[1]"),
    ("unknown quantizer method", _set(["quantizers", "vq", "method"], "vqq"), "quantizers.vq.method"),
    ("unknown quantizer setting", _set(["quantizers", "vq", "beta"], 0.25), "quantizers.vq"),
    ("quantizer setting of wrong type", _set(["quantizers", "ema", "decay"], "high"), "quantizers.ema"),
    ("quantizer setting out of range", _set(["quantizers", "ema", "decay"], 1.5), "quantizers.ema"),
    ("unknown data set in study", _set(["studies", "cvq_size", "dataset"], "cifar100"), "studies.cvq_size.dataset"),
    ("unknown data source", _set(["datasets", "digits", "source"], "kaggle"), "datasets.digits.source"),
    ("missing required key", _delete(["training", "digits_mini", "lr"]), "training.digits_mini"),
    ("unknown model in study", _set(["studies", "cvq_size", "model"], "resnet"), "studies.cvq_size.model"),
    ("unknown study in run_studies", _set(["run_studies"], ["ste_recon", "nope"]), "run_studies[1]"),
    ("bad activation", _set(["models", "mini_rgb32", "activation"], "gelu"), "models.mini_rgb32.activation"),
    ("pixel range that is neither [-1, 1] nor [0, 1]", _set(["models", "mnist_nsvq", "pixel_range"], [0, 255]),
     "models.mnist_nsvq.pixel_range"),
    ("test fraction out of range", _set(["datasets", "digits", "test_fraction"], 1.5), "datasets.digits.test_fraction"),
    ("unknown metric", _set(["evaluation", "metrics"], ["mse", "fid"]), "evaluation.metrics[1]"),
    ("unknown prior kind", _set(["priors", "gpt_mini", "kind"], "diffusion"), "priors.gpt_mini.kind"),
    ("generation study uses an untrained tokenizer", _set(["generation_studies", "digits_generation", "codebook_sizes"], [32]),
     "generation_studies.digits_generation.codebook_sizes[0]"),
    ("unknown prior preset", _set(["generation_studies", "digits_generation", "priors"], ["gpt_mini", "pixelcnn"]),
     "generation_studies.digits_generation.priors[1]"),
    ("classifier on another data set", _set(["classifiers", "digits_cnn", "dataset"], "photo_crops"),
     "generation_studies.digits_generation.classifier"),
    ("unknown generation study", _set(["run_generation_studies"], ["nope"]), "run_generation_studies[0]"),
    ("more_seeds drops a study seed", _set(["studies", "nsvq_grid", "more_seeds", "seeds"], [1, 2, 3]),
     "studies.nsvq_grid.more_seeds.seeds"),
    ("more_seeds names an untrained K", _set(["studies", "nsvq_grid", "more_seeds", "points"], [{"codebook_size": 8192}]),
     "studies.nsvq_grid.more_seeds.points[0].codebook_size"),
    ("a study named like a folder of runs/ that is no study",
     lambda cfg: cfg["studies"].__setitem__("trained", dict(cfg["studies"]["cvq_dim"])), "studies.trained"),
    ("more_seeds names an unknown field", _set(["studies", "nsvq_grid", "more_seeds", "points"], [{"lr": 1}]),
     "studies.nsvq_grid.more_seeds.points[0]"),
]


@pytest.mark.parametrize("label,edit,key", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_params_name_the_key(params_copy, label, edit, key):
    edit(params_copy)
    with pytest.raises(ConfigError) as err:
        config.check(params_copy)
    message = str(err.value)
    assert message.startswith("params.yaml: "), message
    assert key in message, message
    assert "\n" not in message


def test_cli_validate_exits_nonzero_with_one_clear_line(tmp_path, params_copy):
    params_copy["training"]["mini"]["steps"] = -1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params_copy))
    proc = subprocess.run([sys.executable, "-m", "vqrepro", "validate", "--params", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "training.mini.steps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_train_settings_carry_only_the_runs_slice(params_copy):
    key = config.grid(params_copy, "ste_recon")[0]
    settings = config.train_settings(params_copy, key)
    assert settings["quantizer"] == params_copy["quantizers"][key.quantizer]
    assert set(settings) == {"dataset", "quantizer", "model", "training", "codebook_size", "code_dim", "seed"}


def test_the_schema_and_the_training_loop_know_the_same_training_keys(params):
    from dataclasses import MISSING, fields

    from vqrepro.training_settings import TrainingSettings

    schema = yaml.safe_load(config.SCHEMA_PATH.read_text())["definitions"]["training"]
    assert set(schema["properties"]) == {f.name for f in fields(TrainingSettings)}
    assert set(schema["required"]) == {f.name for f in fields(TrainingSettings) if f.default is MISSING}
    for preset in params["training"].values():  # what the schema accepts, the loop accepts
        TrainingSettings.from_dict(preset)


def test_a_registered_method_needs_no_preset(params_copy):
    """A study may name a method without a preset: its jobs are those of the bare preset {method: name}."""
    assert params_copy["quantizers"]["simvq"] == {"method": "simvq"}
    with_preset = config.grid(params_copy, "nsvq_grid")
    jobs = [config.train_settings(params_copy, key) for key in with_preset if key.quantizer == "simvq"]
    del params_copy["quantizers"]["simvq"]
    config.check(params_copy)
    assert config.grid(params_copy, "nsvq_grid") == with_preset
    assert [config.train_settings(params_copy, key) for key in with_preset if key.quantizer == "simvq"] == jobs != []


def test_a_convergence_study_justifies_the_studies_of_its_loop_not_other_convergence_studies(params):
    # nsvq_d3_convergence trains the same loop but measures along the way: not a follower
    assert config.schedule_followers(params, "nsvq_convergence") == {"nsvq_grid": 1500}
    assert config.schedule_followers(params, "nsvq_d3_convergence") == {"nsvq_grid": 1500}
