benchmarks/bench_sbc.py --replicates 200 --budget 220 --methods gibbs,nuts --configs 1d,2d
