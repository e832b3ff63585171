"""The vault benchmark runs end to end on a small adapter (so it cannot rot), and its paired ratio is a median
of per-round ratios."""

import pytest

from loravault.bench.vault import VaultBenchConfig, paired_ratio, run, table


def test_paired_ratio_is_the_median_of_round_ratios():
    # vault seconds, raw seconds: round ratios 0.5, 1.0, 0.25 -> median 0.5
    assert paired_ratio([2.0, 1.0, 4.0], [1.0, 1.0, 1.0]) == 0.5
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


@pytest.mark.timeout(240)
def test_a_small_run_reports_every_key_the_issue_names():
    results = run(VaultBenchConfig(adapter_mib=2, repeats=2, versions=20, latency_calls=10))
    for key in ("upload_ratio_to_raw", "download_ratio_to_raw", "head_p99_ms", "list_p99_ms",
                "upload_ratio_bound_by_cpu", "download_ratio_bound_by_cpu", "required_download_cpu_seconds"):
        assert results[key] > 0
    assert results["download_share_of_cpu_bound"] == round(
        results["download_ratio_to_raw"] / results["download_ratio_bound_by_cpu"], 3)
    assert results["versions"] == 20 and len(results["upload_ratio_per_round"]) == 2
    assert results["machine_before"]["cpus"] >= 1
    assert "| upload |" in table(results)
