"""``memscore distill-effect`` and ``memscore report --distilled``, end to end on stores the
command line trains (a width sweep on modular arithmetic; the "distilled" arm is a width-8 store
of the same plan trained with label smoothing: these commands only read stores)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
typer_testing = pytest.importorskip("typer.testing")

import memscore  # noqa: E402
from memscore.cli import app, main  # noqa: E402

runner = typer_testing.CliRunner()
TRAIN = ("--runs", "8", "--epochs", "2", "--snapshot-epochs", "1", "--ensemble", "8")


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-distill")
    invoke("train", str(root / "sweep"), "--width", "8", "--width", "32", *TRAIN)
    invoke("train", str(root / "distilled"), "--width", "8", "--label-smoothing", "0.3", *TRAIN)
    return root


def test_distill_effect_writes_the_table(trained, tmp_path):
    plain, distilled, teacher = (trained / "sweep" / "width-8", trained / "distilled", trained / "sweep" / "width-32")
    out = tmp_path / "effect.parquet"
    text = invoke(
        "distill-effect", str(plain), str(distilled), "--teacher", str(teacher), "--sweep", str(trained / "sweep"),
        "--out", str(out), "--n-boot", "20",
    )  # fmt: skip
    table = pl.read_parquet(out)
    want = memscore.distillation_effect(plain, distilled, teacher=teacher, trajectories={8: plain, 32: teacher}).table
    assert table.equals(want)
    assert {"teacher_conf", "deviation", "trajectory"} <= set(table.columns)
    assert (
        "plain: 8 runs, test accuracy" in text
        and " AUROC 0." in text
        and "], TPR" in text
        and "mean delta, all" in text
        and "teacher: 8 runs" in text
    )


def test_distill_effect_with_teacher_logits(trained, tmp_path):
    plain, distilled = trained / "sweep" / "width-8", trained / "distilled"
    n, c = memscore.RunStore.open(plain).n_train, 97
    logits = np.random.default_rng(0).normal(size=(n, c)).astype(np.float32)
    np.save(tmp_path / "t.npy", logits)
    invoke("distill-effect", str(plain), str(distilled), "--teacher", str(tmp_path / "t.npy"), "--out",
           str(tmp_path / "e.parquet"))  # fmt: skip
    got = pl.read_parquet(tmp_path / "e.parquet")["teacher_conf"].to_numpy()
    want = memscore.reference.distillation.label_probability(logits, memscore.RunStore.open(plain).train_labels)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_report_with_a_distilled_store(trained):
    sweep = trained / "sweep"
    text = invoke("report", str(sweep), "--distilled", str(trained / "distilled"), "--teacher",
                  str(sweep / "width-32"))  # fmt: skip
    html = (sweep / "report" / "index.html").read_text()
    section = html[html.index("<h2>Distillation</h2>") :]
    # the plain arm is the sweep's store of the distilled store's model (width 8)
    assert f"Plain arm: {(sweep / 'width-8').resolve()}" in section or f"Plain arm: {sweep / 'width-8'}" in section
    # the sweep's memorization across widths gives the trajectory classes of the delta table
    from memscore.runs.proxies import TRAJECTORY_KINDS

    assert "<td>all</td>" in section and any(f"<td>{k}</td>" in section for k in TRAJECTORY_KINDS)
    assert (sweep / "report" / "distillation_confidence.png").is_file() and "report:" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher", "{root}/nothing"], "--teacher: no such teacher store or logits file"),
        (["--teacher", "{root}/bad.npy"], "--teacher: "),
        (["--teacher", "{root}/short.npy"], "teacher: expected logits of shape"),
        (["--kind", "loss"], "--kind: expected one of"),
        (["--bins", "0"], "--bins:"),
    ],
)
def test_distill_effect_bad_input_is_one_line(trained, tmp_path, capsys, args, message):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "short.npy", np.zeros((3, 97), dtype=np.float32))
    out = tmp_path / "e.parquet"
    argv = ["distill-effect", str(trained / "sweep" / "width-8"), str(trained / "distilled"), "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main([*argv, *(a.format(root=tmp_path) for a in args)])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("memscore: error: ") and message in err, err
    assert not out.exists()


def test_report_teacher_without_distilled_is_refused(trained, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(trained / "sweep"), "--teacher", str(trained / "sweep" / "width-32")])
    assert exc.value.code == 1 and "none was given" in capsys.readouterr().err
