"""The behaviour table reproduces the paper's printed numbers, and bad tables fail clearly."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zebra.behaviour import BenchmarkTableError, mb_sim, parse_benchmark_table, read_benchmark

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "model_aware" / "benchmark.csv"
DATA = Path(__file__).resolve().parent / "data"

# Table 4, "Average Score" column, as printed in the paper.
TABLE4_AVERAGE = {
    "gpt-4": 0.99, "gpt-3.5-turbo": 0.77, "bard": 0.86, "llama-2-7b-chat": 0.41, "llama-2-13b-chat": 0.45,
    "llama-2-70b-chat": 0.58, "ultralm-13b": 0.40, "wizardlm-7b": 0.34, "wizardlm-13b": 0.45,
    "wizardlm-70b": 0.58, "vicuna-33b": 0.57, "alpaca-7b": 0.16, "falcon-40b-instruct": 0.47,
    "mpt-30b-chat": 0.38, "starchat": 0.05, "pythia-12b": 0.07,
}


def paper_tsv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, sep="\t", comment="#", index_col=0)


@pytest.fixture(scope="module")
def table():
    return read_benchmark(TABLE)


def test_shipped_table_is_the_original_file():
    original = ROOT.parent / "shared" / "reference" / "benchmark_original.csv"
    if not original.exists():
        pytest.skip("shared/reference not beside this checkout")
    assert TABLE.read_bytes() == original.read_bytes()


def test_ultralm_65b_is_excluded_with_an_info_line_for_the_shipped_table(caplog, tmp_path):
    """The shipped table's empty ultralm-65b row is its known, documented gap: one INFO line, not a
    WARNING on every default command; the same gap in a user's own table stays a WARNING."""
    with caplog.at_level(logging.INFO):
        t = read_benchmark(TABLE)
    assert t.excluded == ("ultralm-65b",)
    assert "ultralm-65b" not in t.models and len(t.models) == 16
    [record] = [r for r in caplog.records if "ultralm-65b" in r.getMessage()]
    assert record.levelno == logging.INFO and "known gap" in record.getMessage()
    caplog.clear()
    own = tmp_path / "benchmark.csv"
    own.write_bytes(TABLE.read_bytes())
    with caplog.at_level(logging.INFO):
        read_benchmark(own)
    [record] = [r for r in caplog.records if "ultralm-65b" in r.getMessage()]
    assert record.levelno == logging.WARNING and "1 model(s)" in record.getMessage()
    caplog.clear()
    lines = TABLE.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + "," * (len(lines[1].split(",")) - 1)  # the shipped file with a 2nd gap
    edited = tmp_path / "two_gaps" / "benchmark.csv"
    edited.parent.mkdir()
    edited.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.INFO):
        read_benchmark(edited)
    assert [r.levelno for r in caplog.records if "missing score" in r.getMessage()] == [logging.WARNING]


def test_percent_column_with_a_plain_fraction_warns_naming_the_values(caplog):
    """`0.785` among `%` cells is read as 78.5 %: plausible, but a guess; say which cells."""
    df = pd.DataFrame({"Model": ["a", "b", "c", "d"], "MMLU": ["86.40%", "0.785", "70.00%", "1"],
                       "ARC": ["90%", "80%", "70%", "60%"]})
    with caplog.at_level(logging.WARNING):
        t = parse_benchmark_table(df, "mine.csv")
    np.testing.assert_allclose(t.raw[:, 0], [0.864, 0.785, 0.70, 1.0])
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == ("mine.csv: column 'MMLU' mixes '%' cells with 2 plain value(s) read as fractions: "
                                   "'0.785' (row 3, b) as 78.5%, '1' (row 5, d) as 100%; write one unit per column")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_benchmark(TABLE)  # the shipped table: one unit per column, no warning
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_table4_average_score(table):
    got = dict(zip(table.models, np.round(table.mb_sup, 2)))
    assert got == pytest.approx(TABLE4_AVERAGE, abs=1e-9)


def test_figure10_normalised_table(table):
    paper = paper_tsv("paper_figure10_normalised.tsv")
    assert list(paper.index) == list(table.models)
    np.testing.assert_array_equal(np.round(table.normalised, 3), paper.to_numpy())


def test_figure10_mb_sim_matrix(table):
    paper = paper_tsv("paper_figure10_mb_sim.tsv")
    assert list(paper.index) == list(table.models) == list(paper.columns)
    np.testing.assert_array_equal(np.round(table.mb_sim, 3), paper.to_numpy())


def test_units_do_not_matter_within_a_column(tmp_path):
    # MMLU written as fractions instead of percentages, IFEval as percentages: same table.
    df = pd.read_csv(TABLE, dtype=str, keep_default_na=False)
    mmlu = df["MMLU"].str.rstrip("%")
    df["MMLU"] = [f"{float(v) / 100:.4f}" if v else "" for v in mmlu]
    df.iloc[:, 1] = [f"{v}%" if v else "" for v in df.iloc[:, 1]]
    other = parse_benchmark_table(df, "edited")
    ref = read_benchmark(TABLE)
    np.testing.assert_allclose(other.normalised, ref.normalised, atol=1e-12)


def test_any_number_of_models_and_benchmarks():
    df = pd.DataFrame({"Model": ["a", "b", "c", "d"], "x": ["1", "2", "3", "4"], "y": ["10%", "40%", "20%", "30%"],
                       "z": ["0.5", "0.1", "0.9", "0.3"], "w": ["7", "8", "9", "1"]})
    t = parse_benchmark_table(df, "mine.csv")
    assert t.benchmarks == ("x", "y", "z", "w") and t.models == ("a", "b", "c", "d")
    np.testing.assert_allclose(t.normalised[:, 0], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(t.mb_sup, t.normalised.mean(axis=1))
    v = t.normalised
    cos = v @ v.T / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    np.testing.assert_allclose(t.mb_sim, cos)


def test_zero_vector_model_has_zero_similarity():
    sim = mb_sim(np.array([[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]]))
    assert sim[0, 1] == 0 and sim[0, 2] == 0 and sim[0, 0] == 1
    assert not np.isnan(sim).any()


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"Model": ["a", "b", "a"], "x": ["1", "2", "3"]}, "'a' appears twice (rows 2 and 4)"),
        ({"Model": ["a", "b", "c"], "x": ["1", "two", "3"]}, "row 3 (b), column 'x': 'two' is not a number"),
        ({"Model": ["a", "b", "c"], "x": ["1", "2", "3"], "y": ["5", "5", "5"]}, "column 'y' has the same value"),
        ({"Model": ["a", "b", "c"], "x": ["", "", ""]}, "no benchmark column has any value"),
        ({"Model": ["a", "b", "c"]}, "at least one benchmark column"),
        ({"Model": ["a", "b", "c"], "x": ["50%", "60", "70%"]}, "row 3 (b), column 'x': plain '60' beside '%'"),
        ({"Model": ["a", "b", "c"], "x": ["1", "", ""]}, "fewer than two models"),
        ({"Model": ["a", "", "c"], "x": ["1", "2", "3"]}, "row 3 has no model name"),
    ],
)
def test_bad_tables_fail_with_one_line_naming_the_place(rows, message):
    with pytest.raises(BenchmarkTableError) as err:
        parse_benchmark_table(pd.DataFrame(rows), "t.csv")
    text = str(err.value)
    assert message in text and text.startswith("t.csv") and "\n" not in text


def test_missing_file_names_the_flag(tmp_path):
    with pytest.raises(BenchmarkTableError, match="--behaviour-table"):
        read_benchmark(tmp_path / "nope.csv")


def test_bom_is_tolerated(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffModel,x,y\na,1,2\nb,2,1\nc,3,3\n".encode("utf-8"))
    assert read_benchmark(p).models == ("a", "b", "c")


def test_subset_renormalises(table):
    knowledge = table.subset(["MMLU", "MMLU-pro"])
    assert knowledge.normalised.shape == (16, 2)
    np.testing.assert_allclose(knowledge.normalised, table.normalised[:, [1, 2]])
    with pytest.raises(BenchmarkTableError, match="no benchmark column 'nope'"):
        table.subset(["nope"])


def test_a_column_on_its_own_scale_is_read_with_a_warning(caplog):
    """A leaderboard Elo (all plain values above 100) is a score on its own scale: min-max makes
    the scale irrelevant, so it is accepted, with a warning that says what was assumed."""
    df = pd.DataFrame({"Model": ["a", "b", "c"], "acc": ["50%", "60%", "70%"], "Arena Elo": ["1250", "1100", "1175"]})
    with caplog.at_level("WARNING"):
        t = parse_benchmark_table(df, "mine.csv")
    np.testing.assert_allclose(t.normalised[:, 1], [1.0, 0.0, 0.5])
    assert "column 'Arena Elo'" in caplog.text and "own scale" in caplog.text


def test_one_value_above_100_among_percentages_is_a_typo():
    df = pd.DataFrame({"Model": ["a", "b", "c"], "x": ["85.37", "853.7", "70.1"]})
    with pytest.raises(BenchmarkTableError, match=r"row 3 \(b\), column 'x': '853.7' is above 100"):
        parse_benchmark_table(df, "t.csv")


@pytest.mark.parametrize("header", ["Model,MMLU,MMLU,ARC", "Model,MMLU, MMLU ,ARC", "Model,MMLU,MMLU.1,MMLU"])
def test_a_benchmark_named_twice_is_refused(tmp_path, header):
    """pandas renames a repeated column `MMLU.1` and the table counted that benchmark twice (9 of the
    shipped pool's 403 SUP pairs changed). One line names the column."""
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\ngpt-4,86.4,80.1,90\nalpaca-7b,40.1,30.2,50\nbard,70,60,70\n", encoding="utf-8")
    with pytest.raises(BenchmarkTableError) as err:
        read_benchmark(path)
    assert "column 'MMLU' appears twice" in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_data_frame_with_a_benchmark_named_twice_is_refused():
    df = pd.DataFrame([["gpt-4", "1", "2"], ["bard", "3", "4"]], columns=["Model", "ARC", " ARC"])
    with pytest.raises(BenchmarkTableError, match="column 'ARC' appears twice"):
        parse_benchmark_table(df, "frame")


def test_identical_behaviour_has_mb_sim_exactly_one():
    """Summed in floating point, the cosine of a vector with itself can come out 1.0000000000000002
    (these scores do): MB-SIM is a cosine, so it is held to [-1, 1], and a twin model is exactly 1."""
    scores = ["47", "51", "75", "95", "4", "15"]
    df = pd.DataFrame([["twin-a", *scores], ["twin-b", *scores], ["low", *["0"] * 6], ["high", *["100"] * 6]],
                      columns=["Model", *"ABCDEF"])
    t = parse_benchmark_table(df, "twins")
    assert t.mb_sim[0, 1] == 1.0 and t.mb_sim.max() == 1.0
    assert t.mb_sim_pairs(np.array([0, 1]), np.array([1, 0])).tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(t.mb_sim_of(np.array([1, 3])), t.mb_sim[np.ix_([1, 3], [1, 3])])


def test_a_percent_cell_beside_plain_fractions_is_read_as_a_fraction():
    """`80%` in a column of fractions is 0.8: min-max would rank an unconverted 80 above every 0.9."""
    df = pd.DataFrame([["a", "80%", "1"], ["b", "0.5", "2"], ["c", "0.9", "3"]], columns=["Model", "X", "Y"])
    t = parse_benchmark_table(df, "mixed")
    np.testing.assert_allclose(t.raw[:, 0], [0.8, 0.5, 0.9])
    np.testing.assert_allclose(t.normalised[:, 0], [0.75, 0.0, 1.0])


def test_a_model_missing_one_score_is_excluded_not_ranked():
    """Any missing score excludes the model (SPEC §2), not only an empty row like ultralm-65b's."""
    df = pd.DataFrame([["a", "80", "70"], ["b", "50", ""], ["c", "90", "20"], ["d", "", ""]], columns=["Model", "X", "Y"])
    t = parse_benchmark_table(df, "gaps")
    assert t.models == ("a", "c") and t.excluded == ("b", "d")
    assert np.isfinite(t.mb_sup).all()


@pytest.mark.parametrize("cell", ["-0.5", "-0.01%", "-1e-9"])
def test_any_negative_score_is_refused(cell):
    df = pd.DataFrame([["a", "0.8"], ["b", cell], ["c", "0.9"]], columns=["Model", "X"])
    with pytest.raises(BenchmarkTableError, match=f"row 3 \\(b\\), column 'X': '{cell}' is negative"):
        parse_benchmark_table(df, "neg")
