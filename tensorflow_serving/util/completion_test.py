"""Tests for Completion: what a reader and a settler of one can rely on."""

import asyncio
import threading
import unittest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util.completion import CancelledError, Completion, InvalidStateError


def completed(result) -> Completion:
    """A Completion already finished with `result`."""
    completion = Completion()
    completion.set_result(result)
    return completion


class ReadingTest(unittest.TestCase):
    def test_result_blocks_until_another_thread_settles_it(self):
        completion = Completion()
        blocked = threading.Event()

        def settle_once_blocked():
            testing.wait_for(lambda: completion._event is not None)
            blocked.set()
            completion.set_result("answer")

        threading.Thread(target=settle_once_blocked, daemon=True).start()
        self.assertEqual(completion.result(timeout=30), "answer")
        self.assertTrue(blocked.is_set())
        self.assertTrue(completion.done())

    def test_result_raises_what_it_was_settled_with(self):
        completion = Completion()
        completion.set_exception(ValueError("bad input"))
        with self.assertRaisesRegex(ValueError, "bad input"):
            completion.result()
        self.assertIsInstance(completion.exception(), ValueError)

    def test_result_times_out_when_nobody_settles_it(self):
        with self.assertRaises(TimeoutError):
            Completion().result(timeout=0)

    def test_completed_is_done_with_its_result(self):
        done = completed(7)
        self.assertTrue(done.done())
        self.assertEqual(done.result(), 7)


class CallbackTest(unittest.TestCase):
    def test_callbacks_run_on_the_settling_thread_in_order(self):
        completion = Completion()
        seen = []
        completion.add_done_callback(lambda c: seen.append(("first", threading.get_ident())))
        completion.add_done_callback(lambda c: seen.append(("second", c.result())))
        settler = threading.Thread(target=completion.set_result, args=(5,))
        settler.start()
        settler.join()
        self.assertEqual(seen[0][0], "first")
        self.assertNotEqual(seen[0][1], threading.get_ident())
        self.assertEqual(seen[1], ("second", 5))

    def test_a_callback_added_after_settling_runs_at_once_on_the_caller(self):
        completion = completed("x")
        seen = []
        completion.add_done_callback(lambda c: seen.append(threading.get_ident()))
        self.assertEqual(seen, [threading.get_ident()])

    def test_a_raising_callback_is_logged_and_the_others_still_run(self):
        completion = Completion()
        seen = []
        completion.add_done_callback(lambda c: 1 / 0)
        completion.add_done_callback(lambda c: seen.append(c.result()))
        with self.assertLogs("tensorflow_serving.util.completion", "ERROR"):
            completion.set_result(3)
        self.assertEqual(seen, [3])


class StateTest(unittest.TestCase):
    def test_settling_twice_is_refused(self):
        completion = completed(1)
        with self.assertRaises(InvalidStateError):
            completion.set_result(2)
        with self.assertRaises(InvalidStateError):
            completion.set_exception(ValueError())
        self.assertEqual(completion.result(), 1)

    def test_a_pending_one_cancels_and_its_readers_see_it(self):
        completion = Completion()
        seen = []
        completion.add_done_callback(lambda c: seen.append(c.cancelled()))
        self.assertTrue(completion.cancel())
        self.assertEqual(seen, [True])
        self.assertFalse(completion.set_running_or_notify_cancel())
        with self.assertRaises(CancelledError):
            completion.result()

    def test_a_running_one_does_not_cancel(self):
        completion = Completion()
        self.assertTrue(completion.set_running_or_notify_cancel())
        self.assertTrue(completion.running())
        self.assertFalse(completion.cancel())
        completion.set_result("ran")
        self.assertEqual(completion.result(), "ran")


class AwaitTest(unittest.TestCase):
    def test_await_gets_a_result_settled_on_another_thread(self):
        async def main():
            completion = Completion()
            loop_thread = threading.get_ident()
            threading.Thread(target=completion.set_result, args=("later",)).start()
            value = await completion
            return value, threading.get_ident() == loop_thread

        self.assertEqual(asyncio.run(main()), ("later", True))

    def test_await_raises_the_settled_exception(self):
        async def main():
            completion = Completion()
            threading.Thread(target=completion.set_exception, args=(KeyError("k"),)).start()
            await completion

        with self.assertRaises(KeyError):
            asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
