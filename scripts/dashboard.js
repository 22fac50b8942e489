// pagealloc's addition to asv's dashboard (scripts/publish copies it in).
//
// asv opens a benchmark's graph on at most 8 lines: for the replay
// benchmarks, parameterized over (trace, mode), that is 8 traces of the
// first mode only.  Open every trace in every mode instead, so the presets
// can be compared at a glance; the panels on the left still narrow it down.
// With more than MAX_LEGEND lines (the bundled corpus gives ~108) the graph
// opens without its legend, which would cover the plot: the "legend" button
// above the graph shows it, and the panels on the left narrow the lines down.
'use strict';

var MAX_LEGEND = 12;

$(document).ready(function () {
    // The benchmark page's hash with every parameter value selected, or null
    // when the hash is not a bare benchmark name (or the benchmark has < 2 params).
    function everyParam(hash, index) {
        var info = $.asv.parse_hash_string(hash);
        var name = info.location[0];
        var bench = index && index.benchmarks && index.benchmarks[name];
        if (!bench || info.location.length !== 1 || Object.keys(info.params).length ||
                !bench.params || bench.params.length < 2) {
            return null;
        }
        var params = {};
        var lines = 1;
        bench.param_names.forEach(function (p, i) {
            params['p-' + p] = bench.params[i];
            lines *= bench.params[i].length;
        });
        if (lines > MAX_LEGEND) {
            params['show-legend'] = ['false'];
        }
        return $.asv.format_hash_string({location: [name], params: params});
    }

    // Registered before asv's own handler (which waits for index.json), so
    // asv reads the rewritten hash.
    $(window).on('hashchange', function () {
        var hash = everyParam(window.location.hash, $.asv.main_json);
        if (hash) {
            history.replaceState(null, '', hash);
        }
    });

    // A benchmark's address opened directly.
    $.getJSON('index.json', function (index) {
        var hash = everyParam(window.location.hash, index);
        if (hash) {
            window.location.replace(hash);
        }
    });
});
