"""The worker layer's own signals (Celery's `Signal` class), declared here and nowhere else.

Tasks and the sweep send them; `workers.observers` turns them into logs and metrics.
"""

from celery.utils.dispatch import Signal

__all__ = ["skill_assessed", "assessment_scored", "speech_provider_called", "dead_lettered", "job_requeued"]

#: sent once per skill: sender=task, outcome=coachup.assessment.service.SkillOutcome, provider=str, model=str
skill_assessed = Signal(name="skill_assessed", providing_args={"outcome", "provider", "model"})

#: sent once per stored summary: sender=task, summary=dict, rubric_version=str, created=bool
assessment_scored = Signal(name="assessment_scored", providing_args={"summary", "rubric_version", "created"})

#: sent once per speech provider call (success or failure): sender=task,
#: outcome=coachup.speech.service.SpeechOutcome (kind, provider, latency_ms, source, bytes_in, bytes_out,
#: bytes_uploaded, error)
speech_provider_called = Signal(name="speech_provider_called", providing_args={"outcome"})

#: sent once per stored dead letter (Redis/embedded: by `deadletter.record`): sender=task,
#: letter=coachup.deadletters.DeadLetter
dead_lettered = Signal(name="dead_lettered", providing_args={"letter"})

#: sent once per job published again because the broker lost its message (`workers.requeue`): sender=app,
#: kind=str (job kind), queue=str, headers=dict (the job's safe context), idle_s=float (time it sat queued)
job_requeued = Signal(name="job_requeued", providing_args={"kind", "queue", "headers", "idle_s", "reason"})
