# benchlib - the benchmark of blobfs, run by scripts/bench (which installs
# what is missing from Debian first) or as `python3 -m benchlib` with
# scripts/ on PYTHONPATH. Standard library, plus matplotlib for the chart.
#
#   common.py          paths, units, system names, formatting of figures
#   measure.py         Row (samples, targets, ratios, verdicts; JSON) and the
#                      measuring: commands, timing, caches, /proc, the machine
#   systems.py         ext4, passthrough_ll, the naive store, blobfs, git:
#                      building, mounting, unmounting, recovering, cleanup
#   workloads_io.py    workloads 1-5 and 7 (big files, small files, space,
#                      write amplification)
#   workloads_scale.py workloads 6 and 8 (a million and ten million blobs)
#   report.py          docs/BENCHMARKS.md, rendered from docs/benchmarks.json
#   chart.py           docs/benchmarks.svg (matplotlib), from the same JSON
#   cli.py             the flags, the run, the JSON; __main__.py calls it
