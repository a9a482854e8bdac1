"""`python -m tunetorch.race [landscape=bumpy]`: every strategy in `race.strategies` (default grid, random,
bayes and bayes+asha) on one objective, with one budget and one seed; race.png, race.gif, race.json
and TensorBoard curves in the race directory (`study.dir`). See docs/race.md.

    plan.py        the config of every entrant, checked before anything runs (`make_plan`)
    runner.py      the command: each entrant's search in turn, then the figure, the GIF and race.json
    synthetic.py   a study on a synthetic landscape, through the search loop on the in-process executor
    landscapes.py  the synthetic landscapes: score surfaces, simulated cost, learning curves
    figure.py      the race figure and race.gif (`race_figure`, `save_race_gif`), laid out from
    panels.py      one drawing function per panel, and
    heatmap.py     the heatmap's estimate from the probes under real training

Every entrant runs through tunetorch.search.run_search, the loop every study uses: real training
through tunetorch.tune.run (worker processes), a synthetic landscape on
tunetorch.executors.inprocess (its trials are learning curves, one epoch per step), so the budget
rule and early stopping are the study's own.
"""
