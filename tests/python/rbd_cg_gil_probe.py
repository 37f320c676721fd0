"""Run by test_the_gil_is_released_during_snap_create in a child process (so that a
binding that kept the GIL fails the test by a timeout instead of hanging the run).

usage: rbd_cg_gil_probe.py CONFFILE POOL GROUP HOOKED_IMAGE -> prints a JSON report.

Takes group snapshot ``GROUP@s1`` in a worker thread while (1) an in-process quiesce
hook on HOOKED_IMAGE answers (its callback runs Python code on a librbd thread, so it
needs the GIL) and holds the quiesce 0.3 s, and (2) a ticker thread records times.
"""

import json
import sys
import threading
import time

import rbd_cg
from rbd_cg_quiesce import QuiesceHook


def main():
    conffile, pool, group, image = sys.argv[1:5]
    state = {"in_call": False, "quiesced_in_call": None}
    ticks, result = [], {}
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    def on_quiesce():
        state["quiesced_in_call"] = state["in_call"]
        time.sleep(0.3)

    with rbd_cg.Cluster(conffile=conffile) as cluster:
        groups = cluster.groups(pool)

        def snapshot():
            state["in_call"] = True
            start = time.monotonic()
            try:
                result["state"] = groups.snap_create(group, "s1")["state"]
            except rbd_cg.Error as e:
                result["error"] = str(e)
            finally:
                result["span"] = (start, time.monotonic())
                state["in_call"] = False

        with QuiesceHook(conffile, pool, image, on_quiesce=on_quiesce) as hook:
            tick_thread = threading.Thread(target=ticker)
            tick_thread.start()
            worker = threading.Thread(target=snapshot)
            worker.start()
            worker.join()
            stop.set()
            tick_thread.join()
            result["events"] = [name for name, _ in hook.events]

    start, end = result["span"]
    during = [t for t in ticks if start <= t <= end]
    result["ticks"] = len(during)
    result["max_gap"] = max((b - a for a, b in zip(during, during[1:])), default=end - start)
    result["quiesced_in_call"] = state["quiesced_in_call"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
