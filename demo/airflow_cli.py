"""``python -m demo.airflow_cli ARGS``: Airflow's command line, quicker to exit.

At exit Python's last garbage-collector passes walk every object the process still holds: after
``airflow dags test`` that is all of Airflow, and the passes took 2 to 3 s while the demo waited.
Freezing the heap once Airflow's own exit handlers have run leaves those objects out of the
passes; they are still freed as the interpreter tears its modules down.
"""

from __future__ import annotations

import atexit
import gc
import runpy
import sys

if __name__ == "__main__":
    atexit.register(gc.freeze)  # registered first, so it runs after Airflow's own handlers
    sys.argv[0] = "airflow"
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)
