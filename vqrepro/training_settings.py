"""The training schedule of one tokenizer run: a preset under ``training:`` in params.yaml.

``TrainingSettings.from_dict`` builds it once, at the entry of the training loop, from
the ``training`` slice of the run's settings. The field names are the preset's keys, so
params.yaml and the settings files the rules write stay as they are. params.yaml is
checked by its schema (vqrepro/params.schema.yaml, which also bounds the values;
tests/test_config.py keeps its keys and these fields the same); this check catches
settings written by hand for ``python -m vqrepro train``. Free of torch, like errors.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class TrainingSettings:
    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    divide_by_data_variance: bool  # as the CVQ-VAE code: MSE / Var(train pixels)
    log_every: int
    checkpoint_every: int
    workers: int
    grad_clip_norm: float | None = None  # None: no clipping
    lr_decay_per_epoch: float = 1.0  # 1: constant rate
    eval_every: int = 0  # whole-split usage and MSE every N steps (convergence.csv); 0: off

    @classmethod
    def from_dict(cls, values: dict) -> TrainingSettings:
        """The settings of ``values``; an unknown, missing or mistyped key is one ConfigError naming it."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"training.{unknown[0]}: unknown training setting; known: {sorted(fields)}; "
                              "correct its spelling or remove it")
        for name, f in fields.items():
            if name not in values:
                if f.default is dataclasses.MISSING:
                    raise ConfigError(f"training.{name}: missing; every training preset sets it "
                                      "(see the presets under training: in params.yaml)")
                continue
            expected, fits = _TYPES[f.type]
            if not fits(values[name]):
                raise ConfigError(f"training.{name}: must be {expected}, got {values[name]!r}; set it to {expected}")
        return cls(**{**values, "betas": tuple(values["betas"])})  # JSON gives a list; Adam keeps a tuple

    def learning_rate(self, step: int, steps_per_epoch: int) -> float:
        """Adam's rate at ``step``: ``lr`` decayed by ``lr_decay_per_epoch`` once per epoch.

        A pure function of the step (as the NS-VQ code's ExponentialLR stepped per epoch),
        so a resumed run continues the schedule without scheduler state.
        """
        return self.lr * self.lr_decay_per_epoch ** (step // steps_per_epoch)


def every(interval: int, last: int) -> list[int]:
    """The steps a loop with this interval acts at: multiples of ``interval`` up to ``last``, and ``last``
    (none for interval 0, as ``eval_every: 0``)."""
    return sorted({*range(interval, last + 1, interval), last}) if interval else []


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is no step count


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# What each field's annotation (a string: annotations are postponed) accepts, and how a message names it.
_TYPES = {
    "int": ("an integer", _is_int),
    "float": ("a number", _is_number),
    "bool": ("true or false", lambda value: isinstance(value, bool)),
    "float | None": ("a number or null", lambda value: value is None or _is_number(value)),
    "tuple[float, float]": ("a list of two numbers",
                            lambda value: isinstance(value, (list, tuple)) and len(value) == 2
                            and all(map(_is_number, value))),
}
