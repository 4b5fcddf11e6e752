python benchmarks/bench_sbc.py --bootstrap 100 --n-boot 100
