"""HTML pages: /about (rules, thresholds, review dates) and /taper (a printable taper plan)."""
