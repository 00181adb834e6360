"""Tests for the runners in executors.py: what a caller of each can rely on."""

import sys
import threading
import unittest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import CALLING_THREAD, WorkerThreads


class CallingThreadTest(unittest.TestCase):
    def test_submit_returns_a_done_future_run_on_the_caller(self):
        future = CALLING_THREAD.submit(threading.get_ident)
        self.assertTrue(future.done())
        self.assertEqual(future.result(), threading.get_ident())

    def test_execute_runs_at_once_and_an_exception_reaches_the_caller(self):
        ran = []
        CALLING_THREAD.execute(ran.append, 1)
        self.assertEqual(ran, [1])
        with self.assertRaises(ZeroDivisionError):
            CALLING_THREAD.execute(lambda: 1 / 0)


class WorkerThreadsTest(unittest.TestCase):
    def setUp(self):
        self.pool = WorkerThreads(2, thread_name_prefix="test")
        self.addCleanup(self.pool.shutdown, wait=True, cancel_futures=True)

    def test_submit_settles_with_the_result_or_the_exception(self):
        self.assertEqual(self.pool.submit(pow, 2, exp=10).result(timeout=30), 1024)
        with self.assertRaises(ZeroDivisionError):
            self.pool.submit(lambda: 1 / 0).result(timeout=30)

    def test_submit_into_settles_the_callers_future(self):
        future = Completion()
        self.pool.submit_into(future, str.upper, "abc")
        self.assertEqual(future.result(timeout=30), "ABC")

    def test_execute_runs_off_the_caller_and_survives_a_raising_call(self):
        seen = Completion()
        with self.assertLogs("tensorflow_serving.util.executors", "ERROR"):
            self.pool.execute(lambda: 1 / 0)
            self.pool.execute(lambda: seen.set_result(threading.get_ident()))
            self.assertNotEqual(seen.result(timeout=30), threading.get_ident())

    def test_never_more_threads_than_max_workers_run_at_once(self):
        gate = threading.Event()
        running, most = [0], [0]
        lock = threading.Lock()

        def hold():
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            gate.wait(30)
            with lock:
                running[0] -= 1

        futures = [self.pool.submit(hold) for _ in range(5)]
        self.assertTrue(testing.wait_for(lambda: running[0] == 2))
        gate.set()
        for future in futures:
            future.result(timeout=30)
        self.assertEqual(most[0], 2)
        self.assertTrue(all(f.done() and f.exception() is None for f in futures))

    def test_initializer_runs_on_each_thread_before_its_work(self):
        names = []
        pool = WorkerThreads(1, initializer=lambda: names.append(threading.current_thread().name))
        self.addCleanup(pool.shutdown)
        self.assertEqual(pool.submit(lambda: list(names)).result(timeout=30), names)
        self.assertEqual(len(names), 1)

    def test_after_shutdown_new_work_is_refused_and_queued_work_cancelled(self):
        gate = threading.Event()
        started = [self.pool.submit(gate.wait, 30) for _ in range(2)]
        self.assertTrue(testing.wait_for(lambda: all(f.running() for f in started)))
        queued = self.pool.submit(int)
        dropped = []
        self.pool.execute(dropped.append, 1)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.assertTrue(queued.cancelled())
        with self.assertRaises(RuntimeError):
            self.pool.submit(int)
        with self.assertRaises(RuntimeError):
            self.pool.execute(int)
        gate.set()
        self.assertTrue(all(f.result(timeout=30) for f in started))
        self.pool.shutdown(wait=True)
        self.assertEqual(dropped, [])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
