"""Sections 4-5 of the paper made executable.

- :mod:`harness.theory.expressivity`: Theorem 1's depth-2 ReLU network that fits
  any n labelled points in d dimensions with 2n + d weights.
- :mod:`harness.theory.min_norm`: SGD on underdetermined least squares converges
  to the minimum-norm interpolant from w0 = 0 (Eq. 3), not from a random start.
- :mod:`harness.theory.runs`: each ``harness theory`` command as one library call that
  computes its numbers and stores them (:mod:`harness.theory.store`); :mod:`harness.cli.theory`
  parses the command line and shows the outcome.
"""
