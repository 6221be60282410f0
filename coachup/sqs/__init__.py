"""Amazon SQS, the broker's own concerns: queue names, bootstrap, depth inspection, call observation.

Pure core: boto3 only, no Celery. The kombu transport that uses these lives in `workers.sqs_transport`.
"""
