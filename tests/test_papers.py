"""The papers' catalogues (papers/*.yaml, vqrepro/papers.py) and where each scale writes (vqrepro/places.py)."""
import copy

import pytest
import yaml

from conftest import REPO
from vqrepro import config as vqconfig
from vqrepro import papers, places
from vqrepro.errors import ConfigError


def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_params_yaml_keeps_settings_and_each_paper_is_one_file(params):
    raw = raw_params()
    assert raw["papers"] == ["papers/cvq_vae.yaml", "papers/nsvq.yaml", "papers/ste.yaml"]
    assert "reproductions" not in raw and "claims" not in raw and "toys" not in raw
    by_paper = {spec["paper"] for spec in params["reproductions"].values()}
    assert by_paper == {"CVQ-VAE", "NS-VQ", "Straightening Out the STE"}
    for name in raw["papers"]:
        catalogue = yaml.safe_load((REPO / name).read_text())
        assert set(catalogue) <= papers.CATALOGUE_KEYS
        # every published table a reproduction compares against is listed by its paper
        for spec in catalogue.get("reproductions", {}).values():
            if "paper_numbers" in spec:
                assert spec["paper_numbers"]["file"] in catalogue["published"]


def write_catalogue(tmp_path, name: str, content: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def with_catalogues(tmp_path, *catalogues: dict) -> dict:
    cfg = raw_params()
    cfg["papers"] = [write_catalogue(tmp_path, f"paper{i}", c) for i, c in enumerate(catalogues)]
    cfg["run_studies"] = ["cvq_dim"]  # a study params.yaml itself defines
    return cfg


def one_reproduction(params, study="cvq_dim", paper="Paper A") -> dict:
    return {"paper": paper, "published": [], "reproductions": {"a_table": {
        "reproduces": "Table 1", "study": study, "rows": {"vq": "VQ"}, "metrics": ["usage"],
        "select": {"code_dim": [8]}}}}


def test_a_name_defined_by_two_papers_is_refused_naming_both_files(tmp_path, params):
    cfg = with_catalogues(tmp_path, one_reproduction(params), one_reproduction(params, paper="Paper B"))
    with pytest.raises(ConfigError, match=r"paper1\.yaml: reproductions\.a_table: also defined in .*paper0\.yaml"):
        vqconfig.with_papers_checked(cfg, "params.yaml")


def test_an_entry_of_another_paper_is_refused(tmp_path, params):
    catalogue = one_reproduction(params)
    catalogue["reproductions"]["a_table"]["paper"] = "Paper B"
    with pytest.raises(ConfigError, match=r"paper0\.yaml: reproductions\.a_table\.paper: 'Paper B', but this file "
                                          r"is the catalogue of 'Paper A'"):
        vqconfig.with_papers_checked(with_catalogues(tmp_path, catalogue), "params.yaml")


def test_a_published_table_that_is_not_shipped_is_refused(tmp_path, params):
    catalogue = dict(one_reproduction(params), published=["nowhere.csv"])
    with pytest.raises(ConfigError, match=r"published\[0\]: nowhere\.csv is not in vqrepro/paper_numbers/"):
        vqconfig.with_papers_checked(with_catalogues(tmp_path, catalogue), "params.yaml")


def test_a_missing_catalogue_names_the_setting(tmp_path):
    cfg = raw_params()
    cfg["papers"] = ["papers/nowhere.yaml"]
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: paper catalogue not found; fix the entry under papers:"):
        vqconfig.with_papers_checked(cfg, "params.yaml")


def test_a_config_overrides_a_catalogue_entry_and_then_owns_its_errors(tmp_path, params):
    cfg = with_catalogues(tmp_path, one_reproduction(params))
    cfg["reproductions"] = {"a_table": {"study": "cvq_dim_typo"}}  # as a paper config re-points an entry
    with pytest.raises(ConfigError, match=r"^params\.yaml: reproductions\.a_table\.study: unknown study 'cvq_dim_typo'"):
        vqconfig.with_papers_checked(cfg, "params.yaml")
    cfg["reproductions"] = {"a_table": {"select": {"code_dim": [16]}}}
    merged = vqconfig.with_papers_checked(copy.deepcopy(cfg), "params.yaml")
    assert merged["reproductions"]["a_table"]["select"] == {"code_dim": [16]}
    assert merged["reproductions"]["a_table"]["rows"] == {"vq": "VQ"} and merged["papers"] == []


def test_every_scale_but_mini_writes_apart_from_the_committed_results(params):
    assert places.workdir(params) == "."
    assert places.workdir(dict(params, scale="smoke")) == "scales/smoke"
    for workdir in (".", "/tmp/elsewhere", "../outside"):
        with pytest.raises(ConfigError, match=r"params\.yaml: workdir: "):
            vqconfig.check(dict(copy.deepcopy(params), scale="paper", workdir=workdir), "params.yaml")
    for config in sorted((REPO / "configs" / "paper").glob("*.yaml")):
        assert yaml.safe_load(config.read_text())["workdir"] == f"scales/paper/{config.stem}"


def test_relative_data_roots_are_re_expressed_from_the_workdir(params, tmp_path):
    cfg = copy.deepcopy(params)
    cfg.update(scale="paper", workdir="scales/paper/x")
    cfg["datasets"]["cifar10"]["root"] = "data_local/cifar10"
    cfg["datasets"]["ffhq"]["root"] = "/abs/ffhq"
    places.relocated(cfg, tmp_path)
    assert cfg["datasets"]["cifar10"]["root"] == "../../../data_local/cifar10"
    assert cfg["datasets"]["ffhq"]["root"] == "/abs/ffhq"
