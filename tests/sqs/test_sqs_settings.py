"""SQS settings: queue names, DLQ names, and refusals of combinations that would run a task twice."""

from __future__ import annotations

import pytest

from coachup.settings import SettingsError, load_settings
from coachup.sqs.names import dlq_name, sqs_queues
from workers.brokers import broker_for

SQS = {"COACHUP_BROKER_URL": "sqs://"}


def test_defaults_name_the_fifo_assessment_queue_and_its_dlq():
    s = load_settings(SQS)
    queues = {q.logical: q for q in sqs_queues(s)}
    assert queues["assessments"].name == "coach-up-assessments.fifo" and queues["assessments"].fifo
    assert queues["assessments"].dlq == "coach-up-assessments-dlq.fifo"
    assert queues["stt"].dlq == "coach-up-stt-dlq" and not queues["stt"].fifo
    assert s.sqs_max_receive_count == 5 and s.aws_region == "us-east-1"


def test_names_prefix_region_and_endpoint_are_overridable():
    s = load_settings(
        {
            **SQS,
            "COACHUP_SQS_QUEUE_PREFIX": "staging-",
            "COACHUP_SQS_ASSESSMENTS_QUEUE": "a.fifo",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:4566",
        }
    )
    q = sqs_queues(s)[0]
    assert (q.name, q.dlq) == ("staging-a.fifo", "staging-a-dlq.fifo")
    assert s.aws_region == "eu-west-1" and s.sqs_endpoint_url == "http://127.0.0.1:4566"
    assert load_settings({**SQS, "AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x"}).aws_region == "eu-central-1"


def test_dlq_name_keeps_the_fifo_suffix_last():
    assert dlq_name("q.fifo") == "q-dlq.fifo" and dlq_name("q") == "q-dlq"


@pytest.mark.parametrize(
    "env,needle",
    [
        # a countdown plus the task's time limit longer than the visibility timeout: SQS would deliver again
        ({"COACHUP_VISIBILITY_TIMEOUT_S": "70"}, "runs twice"),
        ({"COACHUP_VISIBILITY_TIMEOUT_S": "50000", "ASSESSMENTS_BACKOFF_MAX_MS": "1000"}, "between 1 and 43200"),
        ({"COACHUP_SQS_ASSESSMENTS_QUEUE": "coach-up-assessments"}, "must end with .fifo"),
        ({"COACHUP_SQS_STT_QUEUE": "speech.fifo"}, "must not end with .fifo"),
        ({"COACHUP_SQS_TTS_QUEUE": "bad name!"}, "not a valid SQS queue name"),
        ({"COACHUP_SQS_MAX_RECEIVE_COUNT": "0"}, "between 1 and 1000"),
    ],
)
def test_unsafe_sqs_settings_are_refused_at_startup(env, needle):
    # every process chooses its broker at start-up (`create_celery`, every `coachup` command): that refuses
    with pytest.raises(SettingsError, match=needle):
        broker_for(load_settings({**SQS, **env}))
    from click.testing import CliRunner

    from coachup.cli import main

    refused = CliRunner().invoke(main, ["queues"], env={**SQS, **env})
    assert refused.exit_code != 0 and needle in refused.output


def test_sqs_checks_do_not_apply_to_other_brokers():
    assert broker_for(
        load_settings({"COACHUP_SQS_ASSESSMENTS_QUEUE": "not-fifo", "COACHUP_VISIBILITY_TIMEOUT_S": "70"})
    )


def test_celery_config_on_sqs_has_no_events_no_remote_control_and_keeps_failed_messages(tmp_path):
    import celeryconfig

    conf = celeryconfig.celery_config(load_settings({**SQS, "COACHUP_DATA_DIR": str(tmp_path)}))
    assert conf["broker_transport"] == "workers.sqs_transport:Transport"
    assert conf["worker_enable_remote_control"] is False and conf["worker_send_task_events"] is False
    assert conf["task_send_sent_event"] is False
    assert conf["task_acks_on_failure"] is False and conf["task_acks_late"] is True
    assert conf["broker_transport_options"]["coachup_queue_names"]["assessments"] == "coach-up-assessments.fifo"


def test_fifo_options_hash_session_and_group():
    from coachup.jobs import JobRef, job_kind
    from coachup.redaction import Hasher

    hasher = Hasher("k")
    kind, job = job_kind("assessment"), JobRef("sess-1", "grp-1")
    opts = broker_for(load_settings(SQS)).publish_options(kind, hasher, job)
    assert opts["MessageGroupId"] == hasher.session("sess-1")
    assert opts["MessageDeduplicationId"] == "d:" + hasher.digest("sess-1:grp-1")
    assert "sess-1" not in str(opts) and "grp-1" not in str(opts)
    assert broker_for(load_settings({})).publish_options(kind, hasher, job) == {}
    # a standard queue has no group: speech jobs publish plain messages on SQS too
    assert broker_for(load_settings(SQS)).publish_options(job_kind("stt"), hasher, job) == {}
