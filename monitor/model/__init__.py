"""Lines → run state → forecast → snapshot: the pure core.

No os, io, time, threading or subprocess here (an import contract checks it): every function takes
what it needs, `now` included, so the same inputs always give the same answer.
"""
