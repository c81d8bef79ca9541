"""Floor for SweeperFunction's first call: query each of the 64 sweep shards of the deliveries table's
status index for deliveries whose time has passed (none, here)."""

import time

T0 = time.perf_counter()
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["DELIVERIES_TABLE"])


def handler(event: dict, context: object) -> dict:
    now = f"{int(time.time() * 1000):015d}"
    due = 0
    for shard in range(64):
        due += len(
            table.query(
                IndexName="StatusIndex",
                KeyConditionExpression="gsi1pk = :s AND gsi1sk <= :n",
                ExpressionAttributeValues={":s": f"OPEN#{shard:02d}", ":n": now},
                ProjectionExpression="pk",
            )["Items"]
        )
    return {"due": due}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
