"""``python -m design_studio.batch run FILE ...``: the entry point ``accelerate launch -m`` starts in each process.

Example (two processes on one machine; on CPU-only machines accelerate uses gloo)::

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no -m design_studio.batch run season.csv --profile standard --out runs/ss27
"""
import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["batch", *sys.argv[1:]]))
