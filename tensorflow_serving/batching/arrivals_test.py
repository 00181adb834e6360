"""Arrivals counts a request from its arrival to its hand-over, once, and its waiters
return when the last one is handed over or when their time is up (a FakeClock)."""

import threading

from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock


def handle_on_thread(arrivals: Arrivals, hand_over: threading.Event) -> threading.Thread:
    """A handler thread: takes the request begun last, hands it over when told, then ends."""

    def handler():
        arrivals.handing()
        hand_over.wait(10)
        arrivals.handed_over()
        arrivals.end()  # after the hand-over: counts nothing twice

    thread = threading.Thread(target=handler)
    thread.start()
    return thread


def test_a_request_arrives_until_handed_over_and_counts_once():
    arrivals = Arrivals()
    arrivals.begin()
    hand_over = threading.Event()
    thread = handle_on_thread(arrivals, hand_over)
    assert arrivals.arriving() == 1
    hand_over.set()
    thread.join(10)
    assert arrivals.arriving() == 0


def test_end_without_a_hand_over_ends_the_arrival_and_abandon_drops_one_never_handled():
    arrivals = Arrivals()
    arrivals.begin()
    arrivals.handing()
    arrivals.end()  # the handler failed before reaching a queue
    arrivals.end()  # a thread with nothing in hand changes nothing
    assert arrivals.arriving() == 0
    arrivals.begin()
    arrivals.abandon()  # the call ended before its handler ran
    assert arrivals.arriving() == 0


def test_a_waiter_returns_once_the_last_arrival_is_handed_over():
    clock = FakeClock()
    arrivals = Arrivals(clock)
    arrivals.begin()
    hand_over = threading.Event()
    handler = handle_on_thread(arrivals, hand_over)
    waiter = threading.Thread(target=arrivals.wait_handed_over, args=(60.0,))
    waiter.start()
    assert testing.wait_for(lambda: arrivals.waiting() == 1, timeout=10)
    hand_over.set()
    waiter.join(10)
    handler.join(10)
    assert not waiter.is_alive(), "woken by the hand-over; the clock never moved"
    assert arrivals.waiting() == 0


def test_a_waiter_gives_up_when_its_time_is_up():
    clock = FakeClock()
    arrivals = Arrivals(clock)
    arrivals.begin()  # never handed over
    waiter = threading.Thread(target=arrivals.wait_handed_over, args=(0.002,))
    waiter.start()
    assert testing.wait_for(lambda: clock.waiting() == 1, timeout=10)
    clock.advance(0.001)
    assert testing.wait_for(lambda: clock.waits() == 2, timeout=10), "not yet: waits again"
    clock.advance(0.001)
    waiter.join(10)
    assert not waiter.is_alive()
    assert arrivals.arriving() == 1


def test_nothing_arriving_means_no_wait():
    clock = FakeClock()
    Arrivals(clock).wait_handed_over(60.0)
    assert clock.waits() == 0
