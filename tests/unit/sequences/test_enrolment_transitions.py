"""The enrolment state machine's table: what may follow what."""

from newsletter.models import EnrolmentState
from newsletter.sequences.enrolment import IN_SEQUENCE, TRANSITIONS, Move

WAITING, SENDING, COMPLETED, LEFT = (EnrolmentState.WAITING, EnrolmentState.SENDING,
                                     EnrolmentState.COMPLETED, EnrolmentState.LEFT)


def reachable_from(state):
    return {transition.target for transition in TRANSITIONS.values()
            if state in transition.sources}


def test_every_move_is_in_the_table():
    assert set(TRANSITIONS) == set(Move)


def test_a_reader_enters_waiting():
    assert TRANSITIONS[Move.ENROL].sources == frozenset()
    assert TRANSITIONS[Move.ENROL].target is WAITING


def test_a_step_is_only_queued_for_a_waiting_reader():
    # So a reader holds one step's ledger row at a time: step N+1 never before N is final.
    queue = TRANSITIONS[Move.QUEUE]
    assert queue.sources == {WAITING} and queue.target is SENDING
    assert queue.takes == ("current_step_id",)
    assert [move for move, transition in TRANSITIONS.items()
            if transition.target is SENDING] == [Move.QUEUE]


def test_advancing_needs_a_queued_step_and_frees_it():
    advance = TRANSITIONS[Move.ADVANCE]
    assert advance.sources == {SENDING} and advance.target is WAITING
    assert "current_step_id" in advance.clears and advance.takes == ("passed_position",)


def test_completed_and_left_are_final():
    assert reachable_from(COMPLETED) == set()
    assert reachable_from(LEFT) == set()


def test_a_reader_leaves_from_anywhere_in_the_sequence():
    assert {WAITING, SENDING} == IN_SEQUENCE
    assert TRANSITIONS[Move.LEAVE].target is LEFT
    assert TRANSITIONS[Move.COMPLETE].sources == {WAITING}


def test_every_state_but_the_final_ones_can_be_left_or_moved_on():
    assert reachable_from(WAITING) == {SENDING, COMPLETED, LEFT}
    assert reachable_from(SENDING) == {WAITING, LEFT}
