"""Model behaviour knowledge (MBK): the benchmark table, MB-SUP and MB-SIM (paper §3.3–3.4).

A behaviour table has one row per origin model and one column per benchmark. Each column is
min–max normalised over the models that have a value, so its unit (`86.40%`, `0.6371`,
`85.37`) does not matter as long as it is the same down the column.

    s_i^(b)          = (x_i^(b) − min_b) / (max_b − min_b)
    MB-SUP(M_i)      = (1/m) Σ_b s_i^(b)                     (paper eq. 1)
    MB-SIM(M_i, M_j) = cos(v_i, v_j),  v_i = [s_i^(1) … s_i^(m)]
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from zebra.errors import ZebraError
from zebra.jsonio import not_a_file, read_text

log = logging.getLogger(__name__)

# The shipped table (paper Table 4) has one documented gap: ultralm-65b was never evaluated (README,
# "Your own behaviour table"). Every default command reads it, so its exclusion is an INFO line there;
# a missing score anywhere else is a WARNING.
SHIPPED_TABLE = Path(__file__).resolve().parent.parent / "model_aware" / "benchmark.csv"
SHIPPED_GAP = ("ultralm-65b",)


class BenchmarkTableError(ZebraError):
    """A benchmark table that cannot be used; the message is one line naming file, row and column."""


@dataclass(frozen=True)
class BehaviourTable:
    """The rated models of a benchmark table and what ZEBRA derives from them.

    `models` keeps the table's order; it is also the tie-break order when two models have the
    same MB-SUP (the one listed first is preferred), so a result never depends on data order.
    """

    models: tuple[str, ...]
    benchmarks: tuple[str, ...]
    raw: np.ndarray  # (n_models, n_benchmarks), percentages turned into fractions
    normalised: np.ndarray  # (n_models, n_benchmarks), min–max per column
    excluded: tuple[str, ...] = ()  # models in the file with a missing score
    source: str = ""
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {m: i for i, m in enumerate(self.models)})

    @cached_property
    def mb_sup(self) -> np.ndarray:
        return mb_sup(self.normalised)

    @property
    def mb_sim(self) -> np.ndarray:
        """(M, M) MB-SIM of every pair: M² numbers, so for a large table ask `mb_sim_of` the models in use."""
        return mb_sim(self.normalised)

    def mb_sim_of(self, models: np.ndarray) -> np.ndarray:
        """(U, U) MB-SIM among `models` (table indices): the same numbers as `mb_sim`'s, bit for bit,
        whichever other models are asked with them."""
        return mb_sim(self.normalised[np.asarray(models, dtype=np.int64)])

    def mb_sim_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """MB-SIM(a[i], b[i]) for index arrays of one shape: `mb_sim`'s numbers, without the matrix."""
        return _cosines(_unit(self.normalised[a]), _unit(self.normalised[b]), np.asarray(a) == np.asarray(b))

    def frame(self, which: str = "normalised") -> pd.DataFrame:
        """The table as a DataFrame (`raw` or `normalised`), with MB-SUP as a last column."""
        values = self.raw if which == "raw" else self.normalised
        df = pd.DataFrame(values, index=list(self.models), columns=list(self.benchmarks))
        df["MB-SUP"] = self.mb_sup
        return df

    def sim_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.mb_sim, index=list(self.models), columns=list(self.models))

    def subset(self, benchmarks: list[str]) -> "BehaviourTable":
        """The same models seen through some benchmarks only (Figure 11 groups), renormalised."""
        missing = [b for b in benchmarks if b not in self.benchmarks]
        if missing:
            raise BenchmarkTableError(
                f"{self.source}: no benchmark column {missing[0]!r}; columns are {list(self.benchmarks)}"
            )
        cols = [self.benchmarks.index(b) for b in benchmarks]
        raw = self.raw[:, cols]
        return BehaviourTable(
            self.models, tuple(benchmarks), raw, min_max_normalise(raw, benchmarks, self.source),
            self.excluded, self.source,
        )


def min_max_normalise(raw: np.ndarray, benchmarks=None, source: str = "") -> np.ndarray:
    """Min–max normalise each column to [0, 1]; a constant column cannot be normalised."""
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    span = hi - lo
    flat = np.flatnonzero(span == 0)
    if flat.size:
        name = benchmarks[flat[0]] if benchmarks is not None else f"#{flat[0]}"
        raise BenchmarkTableError(
            f"{source}: column {name!r} has the same value for every model, so min-max "
            "normalisation divides by zero; drop the column or fix its values"
        )
    return (raw - lo) / span


def mb_sup(normalised: np.ndarray) -> np.ndarray:
    """MB-SUP: the mean normalised score of each model (paper eq. 1)."""
    return normalised.mean(axis=1)


def mb_sim(normalised: np.ndarray) -> np.ndarray:
    """MB-SIM: cosine similarity of every pair of behaviour vectors.

    A model at the minimum of every benchmark has a zero vector and no direction; its
    similarity to the others is set to 0 (and 1 to itself) instead of NaN, so it can still be
    a candidate but never counts as "similar".

    Each cosine is summed benchmark by benchmark in column order, not by a matrix product: BLAS
    rounds a product differently with the matrix's size, so MB-SIM(i, j) would change in its last
    bit with the other models in the table or in a batch, and with it a tie.
    """
    unit = _unit(normalised)
    m = len(unit)
    return _cosines(unit[:, None, :], unit[None, :, :], np.eye(m, dtype=bool))


def _unit(normalised: np.ndarray) -> np.ndarray:
    """Each row over its Euclidean length, summed in column order (a zero row stays zero)."""
    squares = normalised[..., 0] * normalised[..., 0]
    for b in range(1, normalised.shape[-1]):
        squares = squares + normalised[..., b] * normalised[..., b]
    norms = np.sqrt(squares)
    return normalised / np.where(norms > 0, norms, 1.0)[..., None]


def _cosines(u: np.ndarray, v: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Σ_b u_b·v_b in column order, broadcast over the leading axes, clipped to [−1, 1]; 1 where `same`."""
    total = u[..., 0] * v[..., 0]
    for b in range(1, u.shape[-1]):
        total = total + u[..., b] * v[..., b]
    return np.where(same, 1.0, np.clip(total, -1.0, 1.0))


def _parse_column(values: pd.Series, column: str, source: str) -> np.ndarray:
    """Turn one column of `86.40%` / `0.6371` / `85.37` cells into floats (NaN where empty).

    `%` cells become fractions. Plain numbers are taken as they are, so a column may hold
    percentages as `85.37` or fractions as `0.85` — but not both kinds mixed with `%`, which
    would silently compare 0.85 with 85.
    """
    text = values.astype("string").str.strip()
    empty = text.isna() | (text == "")
    is_pct = text.str.endswith("%").fillna(False)
    number = pd.to_numeric(text.str.rstrip("%").str.strip(), errors="coerce")
    bad = ~empty & number.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BenchmarkTableError(
            f"{source}: row {row + 2} ({values.index[row]}), column {column!r}: "
            f"{text.iloc[row]!r} is not a number (use 86.4, 0.864 or 86.4%)"
        )
    value = number.to_numpy(float)
    pct = is_pct.to_numpy(bool)
    plain = (~empty & ~is_pct).to_numpy(bool)

    def fail(mask: np.ndarray, why: str, lead: str = "") -> None:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise BenchmarkTableError(f"{source}: row {row + 2} ({values.index[row]}), column {column!r}: "
                                      f"{lead}{text.iloc[row]!r} {why}")

    with np.errstate(invalid="ignore"):
        # inf would give MB-SUP NaN and silently drop the model from every pair
        fail(~np.isnan(value) & ~np.isfinite(value), "is not a finite number (use 86.4, 0.864 or 86.4%)")
        fail(value < 0, "is negative; scores are accuracies (0-100, 0-1 or N%)")
        fail(pct & (value > 100), "is above 100%")
        above = plain & (value > 100)
        if above.any() and above.sum() == plain.sum():
            # Every value above 100 (an Elo, a token count): a score on the column's own scale.
            # Min-max normalisation makes any scale work, so it is read, and the warning says so.
            log.warning("%s: column %r: every value is above 100 (max %s): read as a score on its own scale, "
                        "not a percentage; higher = better, min-max normalised like every column",
                        source, column, text[above].iloc[int(np.argmax(value[above]))])
        else:
            fail(above, "is above 100; plain scores are read as percentages (0-100) or fractions (0-1)")
        fail(pct.any() & plain & (value > 1.0), "beside '%' cells; write every cell of a column in one unit", "plain ")
        guessed = pct.any() & plain & (value > 0)  # 0.785 beside `%` cells: read as 78.5 %, a plausible guess
        if guessed.any():
            rows = np.flatnonzero(guessed)
            log.warning("%s: column %r mixes '%%' cells with %d plain value(s) read as fractions: %s; write one unit "
                        "per column", source, column, len(rows),
                        ", ".join(f"{text.iloc[r]!r} (row {r + 2}, {values.index[r]}) as {value[r] * 100:g}%"
                                  for r in rows[:5]) + (", ..." if len(rows) > 5 else ""))
        # A column of plain numbers is either percentages (85.37) or fractions (0.6371); one
        # value in (0, 1) among values above 1 is almost surely a fraction typed into a
        # percentage column (or the other way round), which min-max would rank as ~0.
        small, large = plain & (value > 0) & (value < 1.0), plain & (value > 1.0)
        if small.any() and large.any():
            odd = small if small.sum() <= large.sum() else large
            fail(odd, f"mixes units with the column's other plain values ({small.sum()} in (0, 1), "
                      f"{large.sum()} above 1); write it as a percentage like the rest, or with '%' "
                      "if it really is one")
    return np.where(pct, value / 100.0, value)


def parse_benchmark_table(df: pd.DataFrame, source: str = "<table>") -> BehaviourTable:
    """Build a BehaviourTable from a DataFrame whose first column names the models.

    Models with any missing score are excluded (logged with their names): they cannot be
    ranked, and filling them (the original code used the column mean) would invent a rank.
    """
    if df.shape[1] < 2:
        raise BenchmarkTableError(f"{source}: needs a model column and at least one benchmark column")
    names = df.iloc[:, 0].astype("string").str.strip()
    if names.isna().any() or (names == "").any():
        row = int(np.flatnonzero((names.isna() | (names == "")).to_numpy())[0])
        raise BenchmarkTableError(f"{source}: row {row + 2} has no model name")
    dup = names.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((names == names.iloc[row]).to_numpy())[0])
        raise BenchmarkTableError(
            f"{source}: model {names.iloc[row]!r} appears twice (rows {first + 2} and {row + 2}); keep one row per model"
        )
    body = df.iloc[:, 1:]
    body.index = pd.Index(names.to_list())
    benchmarks = [str(c).strip() for c in body.columns]
    _check_unique_columns(benchmarks, source)
    # Columns that are empty for every model carry no information (e.g. a trailing comma).
    keep = [c for c in body.columns if body[c].astype("string").str.strip().replace("", pd.NA).notna().any()]
    if not keep:
        raise BenchmarkTableError(f"{source}: no benchmark column has any value")
    benchmarks = [str(c).strip() for c in keep]
    raw = np.column_stack([_parse_column(body[c], str(c).strip(), source) for c in keep])

    complete = ~np.isnan(raw).any(axis=1)
    excluded = tuple(n for n, ok in zip(names, complete) if not ok)
    if excluded and excluded == SHIPPED_GAP and Path(source).resolve() == SHIPPED_TABLE:
        log.info("%s: %s has no scores (the shipped table's known gap, never evaluated) and is excluded",
                 source, excluded[0])
    elif excluded:
        log.warning(
            "%s: %d model(s) with a missing score cannot be ranked and are excluded: %s",
            source, len(excluded), ", ".join(excluded),
        )
    if complete.sum() < 2:
        raise BenchmarkTableError(f"{source}: fewer than two models have every score; nothing to compare")
    raw = raw[complete]
    models = tuple(n for n, ok in zip(names, complete) if ok)
    return BehaviourTable(models, tuple(benchmarks), raw, min_max_normalise(raw, benchmarks, source), excluded, source)


def _check_unique_columns(benchmarks: list[str], source: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(benchmarks):
        if name in seen and name:
            raise BenchmarkTableError(f"{source}: column {name!r} appears twice (columns {seen[name] + 2} and {i + 2}); "
                                      "a benchmark counted twice weighs double in MB-SUP and MB-SIM: keep one")
        seen[name] = i


def read_benchmark(path: str | Path) -> BehaviourTable:
    """Read a benchmark CSV (a UTF-8 BOM is tolerated) into a BehaviourTable."""
    path = Path(path)
    if problem := not_a_file(path, "benchmark table"):
        raise BenchmarkTableError(f"{problem} (pass --behaviour-table PATH)")
    try:
        # read_text: the one reader's errors for non-UTF-8 or binary bytes, a BOM dropped
        text = read_text(path, "benchmark table")
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
        # pandas renames a repeated header `MMLU.1`, which would count one benchmark twice: check the header as written
        header = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True,
                             header=None, nrows=1).iloc[0].tolist()
        _check_unique_columns([str(c).strip() for c in header[1:]], str(path))
    except pd.errors.EmptyDataError:
        raise BenchmarkTableError(f"{path}: empty file; expected a header row (model, benchmarks...) and one row per model") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BenchmarkTableError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from err
    return parse_benchmark_table(df, str(path))
