"""The end-of-run summary: what was built, the claims' verdicts, failed grid points and where to look."""
import json

from vqrepro.summary import run_summary


def test_summary_names_tables_claims_and_failed_points(tmp_path):
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "figures").mkdir()
    (results / "metrics").mkdir()
    (results / "tables" / "a.md").write_text("# a\n")
    (results / "figures" / "a.png").write_bytes(b"png")
    (results / "metrics" / "claims.json").write_text(json.dumps(
        {"all": {"reproduced": 5, "not reproduced": 2, "inconclusive": 3, "not measurable here": 1}, "papers": {},
         "scale": "mini"}))
    done, failed = tmp_path / "runs" / "s" / "ok", tmp_path / "runs" / "s" / "bad"
    done.mkdir(parents=True)
    failed.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    (failed / "failure.json").write_text(json.dumps(
        {"error": "NonFiniteLossError", "message": "loss is nan at step 3", "step": 3}))

    text = run_summary([str(results / "tables" / "a.md"), str(results / "tables" / "b.md")], [done, failed], "mini",
                       results=results, succeeded=False)
    assert "stopped with an error at mini scale" in text
    assert "written by this run: 1 of 2 tables, 1 figures" in text
    assert "claims: 5 reproduced, 2 not reproduced, 3 inconclusive, 1 not measurable here (results/claims.md)" in text
    assert f"{failed}: NonFiniteLossError at step 3: loss is nan at step 3" in text
    assert str(done) not in text  # a finished point is not listed as failed

    (results / "metrics" / "claims.json").unlink()
    ok = run_summary([str(results / "tables" / "a.md")], [done], "smoke", results=results)
    assert ok.startswith("vqrepro: finished at smoke scale") and "claims: not checked" in ok
    assert "failed grid points" not in ok


def test_a_failed_run_reports_only_what_it_wrote_itself(tmp_path):
    """Files on disk from an earlier run (the committed mini results, say) are not this run's results."""
    import os
    import time

    results = tmp_path / "results"
    for folder in ("tables", "figures", "metrics"):
        (results / folder).mkdir(parents=True)
    (results / "tables" / "old.md").write_text("# old\n")
    (results / "figures" / "old.png").write_bytes(b"png")
    (results / "metrics" / "claims.json").write_text(json.dumps(
        {"all": {"reproduced": 12, "not reproduced": 2, "inconclusive": 0, "not measurable here": 4}}))
    earlier = time.time() - 3600
    for path in results.rglob("*.*"):
        os.utime(path, (earlier, earlier))
    started = time.time() - 1
    (results / "tables" / "new.md").write_text("# new\n")
    tables = [str(results / "tables" / name) for name in ("old.md", "new.md", "absent.md")]
    text = run_summary(tables, [], "paper", results=results, succeeded=False, since=started, place="scales/paper/x")
    assert "stopped with an error at paper scale in scales/paper/x/" in text
    assert "written by this run: 1 of 3 tables, 0 figures" in text
    assert "claims: not rebuilt by this run" in text and "12 reproduced" not in text
    assert "--configfile (written to scales/paper/x/results/report.html)" in text
    assert "dvc metrics show scales/paper/x/results/metrics" in text
