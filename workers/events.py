"""Domain signals that tasks send and `workers.signals` turns into logs (Celery's own Signal class)."""

from celery.utils.dispatch import Signal

__all__ = ["skill_assessed", "assessment_scored", "dead_lettered"]

#: sent once per skill: sender=task, outcome=coachup.assessment.service.SkillOutcome, provider=str, model=str
skill_assessed = Signal(name="skill_assessed", providing_args={"outcome", "provider", "model"})
#: sent once per stored summary: sender=task, summary=dict, rubric_version=str
assessment_scored = Signal(name="assessment_scored", providing_args={"summary", "rubric_version", "created"})

#: sent once per speech provider call (success or failure): sender=task,
#: outcome=coachup.speech.service.SpeechOutcome (kind, provider, latency_ms, source, bytes_in, bytes_out,
#: bytes_uploaded, error). Bind metrics here: audio bytes in/out, storage bytes uploaded, provider latency/errors.
speech_provider_called = Signal(name="speech_provider_called", providing_args={"outcome"})
__all__ += ["speech_provider_called"]

#: sent once per stored dead letter (Redis/embedded: by `deadletter.record`): sender=task,
#: letter=coachup.deadletters.DeadLetter (bind `coachup_deadletters_total{task=letter.task,reason=letter.reason}`)
dead_lettered = Signal(name="dead_lettered", providing_args={"letter"})

#: sent once per job published again because the broker lost its message (`workers.requeue`): sender=app,
#: kind=str (job kind), queue=str, headers=dict (the job's safe context), idle_s=float (time it sat queued)
job_requeued = Signal(name="job_requeued", providing_args={"kind", "queue", "headers", "idle_s"})
__all__ += ["job_requeued"]
