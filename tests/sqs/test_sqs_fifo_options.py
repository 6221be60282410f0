"""The FIFO message options SQS gets for each publish (workers/brokers/sqs.py): first publish, a republished
copy, a retry, a redrive. The group keeps one session's jobs in order; the deduplication id decides which
copies SQS drops within its 5-minute window, so each path's id is checked for what it must and must not match.
"""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import pytest

from coachup.deadletters import DeadLetter
from coachup.jobs import JobRef, job_kind
from coachup.redaction import Hasher
from coachup.settings import load_settings
from workers.brokers import broker_for

HASHER = Hasher("fifo-options-secret")
JOB = JobRef("sess-1", "grp-1")


@pytest.fixture(scope="module")
def sqs():
    return broker_for(load_settings({"COACHUP_BROKER_URL": "sqs://"}))


def test_a_first_publish_carries_the_hashed_group_and_dedup_id(sqs):
    opts = sqs.publish_options(job_kind("assessment"), HASHER, JOB)
    assert opts == {
        "MessageGroupId": HASHER.session("sess-1"),
        "MessageDeduplicationId": "d:" + HASHER.digest("sess-1:grp-1"),
    }


def test_a_republished_copy_keeps_its_group_and_gets_an_attempt_specific_dedup_id(sqs):
    first = sqs.publish_options(job_kind("assessment"), HASHER, JOB)
    again = sqs.publish_options(job_kind("assessment"), HASHER, JOB, attempt="q2")
    assert again["MessageGroupId"] == first["MessageGroupId"]
    assert again["MessageDeduplicationId"] == first["MessageDeduplicationId"] + ":q2"


def test_only_a_fifo_queue_with_both_keys_gets_options(sqs):
    assert sqs.publish_options(job_kind("stt"), HASHER, JOB) == {}  # a standard queue
    kind = job_kind("assessment")
    # SQS refuses a MessageGroupId on a standard queue: a kind with keys moved to one publishes plain messages
    assert sqs.publish_options(dataclasses.replace(kind, queue="stt"), HASHER, JOB) == {}
    assert sqs.publish_options(job_kind("interactions.sweep"), HASHER, JOB) == {}  # FIFO queue, no keys
    assert sqs.publish_options(dataclasses.replace(kind, fifo_dedup=None), HASHER, JOB) == {}
    assert sqs.publish_options(dataclasses.replace(kind, fifo_group=None), HASHER, JOB) == {}


def _request(properties, retries=0, task_id="task-1"):
    return SimpleNamespace(properties=properties, retries=retries, id=task_id)


def test_a_retry_keeps_the_group_and_its_dedup_id_names_the_attempt(sqs):
    props = {"MessageGroupId": "s:g", "MessageDeduplicationId": "d:abc"}
    assert sqs.retry_options(_request(props, retries=0)) == {
        "MessageGroupId": "s:g",
        "MessageDeduplicationId": "d:abc:r1",
    }
    # the next retry replaces the attempt, never stacks it (deterministic: a redelivered retry is dropped)
    props2 = {"MessageGroupId": "s:g", "MessageDeduplicationId": "d:abc:r1"}
    assert sqs.retry_options(_request(props2, retries=1))["MessageDeduplicationId"] == "d:abc:r2"
    assert sqs.retry_options(_request(props2, retries=1)) == sqs.retry_options(_request(props2, retries=1))


def test_a_retry_without_a_dedup_id_derives_it_from_the_task_id(sqs):
    opts = sqs.retry_options(_request({"MessageGroupId": "s:g"}, retries=2, task_id="t-9"))
    assert opts == {"MessageGroupId": "s:g", "MessageDeduplicationId": "t-9:r3"}


@pytest.mark.parametrize("properties", [None, {}, {"MessageGroupId": ""}, {"MessageDeduplicationId": "d:x"}])
def test_a_retry_of_a_message_without_a_group_has_no_options(sqs, properties):
    assert sqs.retry_options(_request(properties)) == {}
    assert sqs.retry_options(SimpleNamespace(retries=0, id="t")) == {}  # a request with no properties at all


def _letter(group_id):
    return DeadLetter(
        id="job-1.0",
        task_id="job-1",
        task="assessments.run",
        queue="assessments",
        reason="retries_exhausted",
        error_type="timeout",
        error_message="timed out",
        attempts=4,
        first_failure_at="2026-01-01T00:00:00.000Z",
        last_failure_at="2026-01-01T00:00:01.000Z",
        group_id=group_id,
    )


def test_a_redrive_keeps_the_group_with_a_fresh_dedup_id_each_time(sqs):
    one, two = sqs.redrive_options(_letter("s:g")), sqs.redrive_options(_letter("s:g"))
    assert one["MessageGroupId"] == two["MessageGroupId"] == "s:g"
    assert one["MessageDeduplicationId"] != two["MessageDeduplicationId"]
    assert re.fullmatch(r"[0-9a-f]{32}", one["MessageDeduplicationId"])
    assert sqs.redrive_options(_letter(None)) == {} and sqs.redrive_options(_letter("")) == {}
