"""What a template's resources are locally: their names, ``Ref`` values and ``Fn::GetAtt`` attributes.

Names follow the resource's own name property (``TableName``, ``TopicName``, ``FunctionName``,
``Name``...) when the template sets one, else the logical id (CloudFormation would add the stack
name and a random suffix; locally the logical id is what a reader recognises). ARNs are built
as AWS builds them, in the engine's region and account, so the local services answer them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# resource type -> (name property, what Ref returns: "name" | "arn" | "url")
KINDS: dict[str, tuple[str | None, str]] = {
    "AWS::Serverless::Function": ("FunctionName", "name"),
    "AWS::Lambda::Function": ("FunctionName", "name"),
    "AWS::Serverless::StateMachine": ("Name", "arn"),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", "arn"),
    "AWS::DynamoDB::Table": ("TableName", "name"),
    "AWS::DynamoDB::GlobalTable": ("TableName", "name"),
    "AWS::Serverless::SimpleTable": ("TableName", "name"),
    "AWS::SNS::Topic": ("TopicName", "arn"),
    "AWS::SQS::Queue": ("QueueName", "url"),
    "AWS::S3::Bucket": ("BucketName", "name"),
    "AWS::Events::EventBus": ("Name", "name"),
    "AWS::IAM::Role": ("RoleName", "name"),
    "AWS::StepFunctions::Activity": ("Name", "arn"),
}


@dataclass(frozen=True)
class LocalResource:
    """One resource of the template as it exists locally."""

    logical_id: str
    type: str
    name: str
    arn: str
    ref: str

    def attribute(self, attr: str, region: str, account: str) -> str | None:
        t = self.type
        common = {"Arn": self.arn}
        if t in ("AWS::SNS::Topic",):
            common.update(TopicArn=self.arn, TopicName=self.name)
        elif t == "AWS::SQS::Queue":
            common.update(QueueName=self.name, QueueUrl=self.ref)
        elif t == "AWS::S3::Bucket":
            common.update(DomainName=f"{self.name}.s3.amazonaws.com",
                          RegionalDomainName=f"{self.name}.s3.{region}.amazonaws.com",
                          WebsiteURL=f"http://{self.name}.s3-website-{region}.amazonaws.com")
        elif t in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine", "AWS::StepFunctions::Activity"):
            common.update(Name=self.name)
        elif t in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::Serverless::SimpleTable"):
            common.update(StreamArn=f"{self.arn}/stream/1970-01-01T00:00:00.000")
        elif t == "AWS::Events::EventBus":
            common.update(Name=self.name)
        elif t == "AWS::IAM::Role":
            common.update(RoleId=f"AROA{self.name.upper()[:17]}")
        return common.get(attr)


def local_resource(logical_id: str, rtype: str, name: str | None, region: str, account: str) -> LocalResource:
    """The local name, ARN and Ref value of a resource (`name` from its name property, if set)."""
    prop, ref_kind = KINDS.get(rtype, (None, "name"))
    n = name or (logical_id.lower() if rtype == "AWS::S3::Bucket" else logical_id)
    svc = rtype.split("::")[1].lower() if rtype.count("::") == 2 else "cloudformation"
    arn = {
        "AWS::Serverless::Function": f"arn:aws:lambda:{region}:{account}:function:{n}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{n}",
        "AWS::Serverless::StateMachine": f"arn:aws:states:{region}:{account}:stateMachine:{n}",
        "AWS::StepFunctions::StateMachine": f"arn:aws:states:{region}:{account}:stateMachine:{n}",
        "AWS::StepFunctions::Activity": f"arn:aws:states:{region}:{account}:activity:{n}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{n}",
        "AWS::DynamoDB::GlobalTable": f"arn:aws:dynamodb:{region}:{account}:table/{n}",
        "AWS::Serverless::SimpleTable": f"arn:aws:dynamodb:{region}:{account}:table/{n}",
        "AWS::SNS::Topic": f"arn:aws:sns:{region}:{account}:{n}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{n}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{n}",
        "AWS::Events::EventBus": f"arn:aws:events:{region}:{account}:event-bus/{n}",
        "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{n}",
    }.get(rtype, f"arn:aws:{svc}:{region}:{account}:{re.sub(r'[^A-Za-z0-9-]', '', logical_id)}")
    url = f"https://sqs.{region}.amazonaws.com/{account}/{n}"
    ref = {"name": n, "arn": arn, "url": url}[ref_kind]
    return LocalResource(logical_id, rtype, n, arn, ref)


def name_property(rtype: str) -> str | None:
    return KINDS.get(rtype, (None, ""))[0]


def table_keys(rtype: str, props: dict[str, Any]) -> tuple[str, str | None]:
    """(hash key, range key) of a DynamoDB table resource."""
    if rtype == "AWS::Serverless::SimpleTable":
        return (props.get("PrimaryKey") or {}).get("Name", "id"), None
    schema = props.get("KeySchema") or []
    hash_key = next((k.get("AttributeName") for k in schema if k.get("KeyType") == "HASH"), None)
    range_key = next((k.get("AttributeName") for k in schema if k.get("KeyType") == "RANGE"), None)
    return hash_key or "id", range_key
