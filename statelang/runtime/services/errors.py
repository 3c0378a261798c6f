"""Errors of the local AWS services, named as Step Functions names them so Catch and Retry match.

Optimised integrations name an error ``<Service>.<Exception>`` (``DynamoDB.ConditionalCheckFailedException``,
``SNS.NotFoundException``); AWS SDK integrations (``aws-sdk:s3:getObject``) name it
``<ServiceName>.<ErrorName>`` with both in PascalCase and the ``Exception`` suffix always there
(``S3.NoSuchKeyException``; AWS's "Learning to use AWS service SDK integrations" page).
"""

from __future__ import annotations

from statelang.runtime.resources import HandlerError

# aws-sdk:<service> -> the PascalCase service name of SDK integration errors
SDK_SERVICE_NAMES = {"dynamodb": "DynamoDb", "s3": "S3", "sns": "Sns", "sqs": "Sqs", "eventbridge": "EventBridge",
                     "lambda": "Lambda", "sfn": "Sfn", "secretsmanager": "SecretsManager", "ssm": "Ssm",
                     "kinesis": "Kinesis", "firehose": "Firehose", "cloudwatch": "CloudWatch", "ecs": "Ecs",
                     "athena": "Athena", "glue": "Glue", "kms": "Kms", "sesv2": "SesV2", "ses": "Ses",
                     "apigateway": "ApiGateway", "acmpca": "AcmPca", "rds": "Rds", "ec2": "Ec2"}


class ServiceError(HandlerError):
    """A local service's failure: ``error`` is ``<service>.<exception>``, ``cause`` its message."""

    def __init__(self, service: str, exception: str, message: str):
        super().__init__(f"{service}.{exception}", message)
        self.service = service
        self.exception = exception


def sdk_error(service: str, exception: str, message: str) -> ServiceError:
    """The same failure as an ``aws-sdk:<service>:*`` task reports it."""
    name = exception if exception.endswith("Exception") else exception + "Exception"
    return ServiceError(SDK_SERVICE_NAMES.get(service, service[:1].upper() + service[1:]), name, message)
