"""Reports rebuilt from stored runs: the paper's Table 1, Figure 1 and Figure 2b."""
