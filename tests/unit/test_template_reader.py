"""The local stack reads template.yaml itself: functions, routes, queue sources and intrinsics."""

from devkit.template import Resolver, Template, local_queue_url


def test_functions_routes_and_queue_sources_come_from_the_template() -> None:
    functions = Template().functions()
    assert set(functions) == {
        "RelayFunction",
        "DeliveryWorkerFunction",
        "SendFunction",
        "SendWorkerFunction",
        "EventsFunction",
        "EventWorkerFunction",
        "QueryFunction",
        "SweeperFunction",
        "InboundMailFunction",  # deployed only with EnableInboundMail; locally always there
    }
    assert functions["SweeperFunction"].schedules == ["rate(1 minute)"]
    worker = functions["EventWorkerFunction"].queue_sources[0]
    assert (worker.queue, worker.batch_size, worker.report_batch_item_failures) == ("EventQueue", 10, True)
    sender = functions["SendWorkerFunction"].queue_sources[0]
    assert (sender.queue, sender.report_batch_item_failures) == ("SendQueue", True)
    assert functions["RelayFunction"].timeout == 25 and functions["QueryFunction"].timeout == 15


def test_intrinsics_resolve_to_local_names() -> None:
    resolver = Resolver(Template())
    assert resolver.resolve({"Ref": "SubscriptionsTable"}) == "SubscriptionsTable"
    assert resolver.resolve({"Ref": "EventQueue"}) == local_queue_url("EventQueue")
    assert resolver.resolve({"Fn::GetAtt": ["EventDLQ", "Arn"]}) == "arn:aws:sqs:us-east-1:123456789012:EventDLQ"
    assert resolver.resolve({"Fn::Sub": "x-${Stage}-${AWS::Region}"}) == "x-dev-us-east-1"
    assert (
        resolver.resolve({"Fn::Sub": "${PayloadBucket.Arn}/*"}) == "arn:aws:s3:::martech-bridge-local-payloadbucket/*"
    )
    assert resolver.resolve({"Fn::If": ["StaticEgressIp", "on", "off"]}) == "off"
    assert Resolver(Template(), {"EnableStaticEgressIp": "true"}).condition("StaticEgressIp") is True


def test_a_delivery_message_goes_to_the_dlq_after_a_few_crashes_not_after_sixty_receives() -> None:
    # Retries are fresh messages, so a receive count only climbs when the worker crashed on the message.
    queue = Template().resources["DeliveryQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] <= 10
