"""``python -m harness``: the command line (what torchrun and ``--nproc-per-node`` start)."""

from harness.cli import main

main()
