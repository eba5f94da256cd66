"""``python -m demo.airflow_cli ARGS``: Airflow's command line, with fewer full garbage collections.

``airflow dags test`` builds Airflow's in-process Execution API on its first task (thousands of
versioned pydantic models) while holding all of Airflow: Python's full collector passes walked
that heap nine times in a demo run, 1.6 s in all. Here they come ten times less often (the oldest
generation's threshold is 100, as ``freeze_triggerer_heap`` sets it in a triggerer): one pass.

At exit the last passes walk every object the process still holds, which took 2 to 3 s while the
demo waited. Freezing the heap once Airflow's own exit handlers have run leaves those objects out
of the passes; they are still freed as the interpreter tears its modules down.
"""

from __future__ import annotations

import atexit
import gc
import runpy
import sys

if __name__ == "__main__":
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
    atexit.register(gc.freeze)  # registered first, so it runs after Airflow's own handlers
    sys.argv[0] = "airflow"
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)
