"""An asv plugin: ``asv compare`` and ``asv continuous`` print the suite's directions.

asv loads it from asv.conf.json (``"plugins": [".pagealloc.results.asvplugin"]``;
the leading dot imports it from the folder asv runs in, the clone's root)
before a command runs.  asv takes every figure as lower-is-better.  The
benchmarks are named so that this holds wherever a figure has a better
direction (pagealloc.results.gate: a higher-is-better figure is tracked as
its inverse), but a figure with none (``track_released_bytes``: releasing
more lowers RSS and costs madvise calls) cannot be told apart, and asv would
list it as improved or worse.  So this wraps ``Compare.print_table``, which
both commands call: the figures with a direction are compared as asv does,
and the others in one table of their own, after them, under
NO_DIRECTION_TITLE, marked ``+`` (went up) or ``-`` (went down) beyond the
factor (with ``--only-changed``, only those).  They never count as improved or worse (so ``asv continuous`` does
not fail on them), as in the gate.
"""

from __future__ import annotations

import contextlib
import io

from asv.commands.compare import Compare
from asv.results import iter_results_for_machine_and_hash

from pagealloc.results.gate import direction

NO_DIRECTION_TITLE = ("Benchmarks with no better direction (pagealloc.results.gate): never improved or worse; "
                      "+ went up, - went down beyond the factor:")
_ALL_TITLE = "All benchmarks:"  # asv's title of an unsplit table
_original = Compare.print_table.__func__


def _results(conf, machine, commit_hash, env_names):
    """What asv's print_table reads when given no result set (its results_default_iter)."""
    for result in iter_results_for_machine_and_hash(conf.results_dir, machine, commit_hash):
        if env_names is not None and result.env_name not in env_names:
            continue
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            yield (key, params, result.get_result_value(key, params), result.get_result_stats(key, params),
                   result.get_result_samples(key, params), result.benchmark_version.get(key),
                   result.params["machine"], result.env_name)


def _has_direction(row) -> bool:
    return direction(row[0]) != 0


def print_table(cls, conf, hash_1, hash_2, factor, split, resultset_1=None, resultset_2=None, machine=None,
                only_changed=False, sort="default", use_stats=True, env_names=None, commit_names=None):
    rows_1 = list(_results(conf, machine, hash_1, env_names) if resultset_1 is None else resultset_1)
    rows_2 = list(_results(conf, machine, hash_2, env_names) if resultset_2 is None else resultset_2)
    directed_1, directed_2 = [r for r in rows_1 if _has_direction(r)], [r for r in rows_2 if _has_direction(r)]
    other_1, other_2 = [r for r in rows_1 if not _has_direction(r)], [r for r in rows_2 if not _has_direction(r)]
    common = dict(machine=machine, sort=sort, use_stats=use_stats, env_names=env_names, commit_names=commit_names)
    if not (directed_1 and directed_2 and other_1 and other_2):  # nothing to split off: asv as it is
        return _original(cls, conf, hash_1, hash_2, factor, split, rows_1, rows_2, only_changed=only_changed, **common)
    status = _original(cls, conf, hash_1, hash_2, factor, split, directed_1, directed_2, only_changed=only_changed,
                       **common)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _original(cls, conf, hash_1, hash_2, factor, False, other_1, other_2, only_changed=only_changed, **common)
    table = out.getvalue().replace(_ALL_TITLE, "").strip("\n")
    if table:
        print(f"\n{NO_DIRECTION_TITLE}\n\n{table}")
    return status


Compare.print_table = classmethod(print_table)
