"""Configuration conventions: parts, options by name, DERIVED, metadata checks, families."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from sigstream.core.errors import ConfigError
from sigstream.models.training.config import (
    FitConfig,
    build,
    check,
    leaves,
    opt,
    options,
    part,
    with_options,
)
from sigstream.models.training.config import resolve as resolved
from sigstream.models.training.family import discover, resolve


@dataclass(frozen=True)
class Inner:
    rate: float = opt(100.0, "sample rate", above=0)
    band: tuple[float, float] = opt((1.0, 2.0), "band (Hz)", low=0)

    def validate(self) -> None:
        if self.band[0] > self.band[1]:
            raise ConfigError("--band: low above high")
        check(self)


@dataclass(frozen=True)
class Model:
    rate: float = opt(100.0, "the data's rate")
    width: int = opt(8, "width", low=1)
    kind: str = opt("a", "kind", choices=("a", "b"))


@dataclass(frozen=True)
class Outer:
    DERIVED: ClassVar[tuple[str, ...]] = ("model.rate",)
    model: Model = part(Model, "model")
    data: Inner = part(Inner, "data")
    fit: FitConfig = part(lambda: FitConfig(epochs=3), "fit")
    note: str | None = opt(None, "a note")


def test_options_are_leaf_names_and_derived_fields_are_not_options() -> None:
    names = options(Outer())
    assert names["rate"].path == "data.rate" and names["width"].path == "model.width"
    assert names["epochs"].value == 3 and names["note"].path == "note"
    assert "model.rate" not in {leaf.path for leaf in leaves(Outer())}


def test_two_leaves_of_one_name_are_refused() -> None:
    @dataclass(frozen=True)
    class Clash:
        model: Model = part(Model, "model")
        data: Inner = part(Inner, "data")

    with pytest.raises(TypeError, match="'rate' is both model.rate and data.rate"):
        options(Clash())


def test_with_options_by_name_path_and_item() -> None:
    c = build(Outer, width=4, lr=0.5)
    assert c.model.width == 4 and c.fit.lr == 0.5 and c.fit.epochs == 3
    c = with_options(c, {"model.rate": 7.0, "data.band[1]": 9.0})
    assert c.model.rate == 7.0 and c.data.band == (1.0, 9.0)
    with pytest.raises(ConfigError, match="unknown option 'widht'"):
        build(Outer, widht=4)


@pytest.mark.parametrize(("values", "message"), [
    ({"width": 0}, "--width must be >= 1, got 0"),
    ({"kind": "c"}, "unknown kind 'c'; choose one of a, b"),
    ({"rate": 0.0}, "--rate must be > 0, got 0.0"),
    ({"band": (-1.0, 2.0)}, "--band must be >= 0, got -1.0"),
    ({"band": (3.0, 2.0)}, "--band: low above high"),  # the part's own check comes first
    ({"ema": 1.0}, "--ema must be < 1, got 1.0"),
    ({"epochs": 0}, "--epochs must be >= 1, got 0"),
    ({"lr": float("nan")}, "--lr must be > 0, got nan"),
])
def test_check_names_the_option(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check(build(Outer, **values))
    assert str(err.value) == message


def test_defaults_pass_their_own_checks() -> None:
    check(Outer())
    for group in discover().values():
        for t in group:
            resolved(resolve(t.config)()).validate()
            resolve(t.eval_config)()


def test_every_family_declares_resolvable_references() -> None:
    families = discover()
    assert {"extractor", "forecaster", "teb", "enhancer"} <= set(families)
    assert [t.key for t in families["enhancer"]] == ["speech", "augmentor", "causal"]
    for group in families.values():
        for t in group:
            for ref in (t.config, t.train, t.eval_config, t.evaluate):
                assert resolve(ref) is not None
            assert t.example.startswith(f"sigstream train {t.command}")
            assert t.eval_example.startswith(f"sigstream eval {t.command}")
