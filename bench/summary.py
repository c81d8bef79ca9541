"""One table of every benchmark figure beside its baseline from the same run (bench/results.json)."""

import json

from devkit.template import REPO_ROOT


def main() -> None:
    results = json.loads((REPO_ROOT / "bench" / "results.json").read_text())
    rows: list[tuple[str, str, str, str]] = []
    cold = results.get("coldstart", {})
    base = cold.get("import boto3 (baseline)", {}).get("ms")
    cpu_base = cold.get("import boto3 (baseline)", {}).get("cpu_ms")
    for name, row in cold.items():
        if not name.startswith("import"):
            rows.append(
                (f"cold start {name}", f"{row['ms']:.0f} ms", f"import boto3 {base:.0f} ms", f"{row['ratio']:.2f}")
            )
    for name, row in cold.items():
        if not name.startswith("import") and "cpu_ms" in row:
            rows.append(
                (
                    f"cold start {name}, CPU time",
                    f"{row['cpu_ms']:.0f} ms",
                    f"import boto3 {cpu_base:.0f} ms",
                    f"{row['cpu_ratio']:.2f}",
                )
            )
    for name, row in results.get("first_call", {}).items():
        rows.append(
            (
                f"first call {name}",
                f"{row['ms']:.0f} ms",
                f"hand-written floor {row['floor_ms']:.0f} ms",
                f"{row['ratio']:.2f}",
            )
        )
    for name, row in results.get("first_call", {}).items():
        rows.append(
            (
                f"peak RSS after first call {name}",
                f"{row['peak_rss_mb']:.0f} MB",
                f"floor {row['floor_peak_rss_mb']:.0f} MB",
                f"{row['peak_rss_mb'] / row['floor_peak_rss_mb']:.2f}",
            )
        )
    for name, row in results.get("replaced_utilities", {}).items():
        rows.append(
            (
                f"INIT with Powertools {name}",
                f"{row['powertools_ms']:.0f} ms",
                f"ours {row['ours_ms']:.0f} ms",
                f"{row['powertools_ms'] / row['ours_ms']:.2f}",
            )
        )
    for service, row in results.get("relay_overhead", {}).items():
        rows.append(
            (
                f"relay, target {service}",
                f"{row['relay_ms']:.1f} ms",
                f"direct {row['direct_ms']:.1f} ms",
                f"{row['ratio']:.2f}",
            )
        )
    ingest = results.get("ingest")
    if ingest:
        rows.append(("ingest: acknowledge", f"{ingest['ack_events_per_second']:.0f} events/s", "-", "-"))
        rows.append(("ingest: worker", f"{ingest['worker_events_per_second']:.0f} events/s", "-", "-"))
        rows.append(
            (
                "ingest: DynamoDB requests/event",
                f"{ingest['dynamodb_requests_per_event']:.2f}",
                f"floor {ingest['floor_requests_per_event']:.2f}",
                f"{ingest['ratio_to_floor']:.1f}",
            )
        )
        if "todays_design_requests_per_event" in ingest:
            rows.append(
                (
                    "ingest: requests/event vs today's design",
                    f"{ingest['dynamodb_requests_per_event']:.2f}",
                    f"today's {ingest['todays_design_requests_per_event']:.2f}",
                    f"{ingest['dynamodb_requests_per_event'] / ingest['todays_design_requests_per_event']:.2f}",
                )
            )
            rows.append(
                (
                    "ingest: state digest",
                    ingest["state_digest"],
                    f"today's {ingest['todays_design_state_digest']}",
                    "equal" if ingest["state_digest_equal"] else "DIFFERENT",
                )
            )
            rows.append(
                (
                    "ingest: normalise (parse+normalise)",
                    f"{ingest['normalise_us_per_event']:.2f} us/event",
                    f"json.loads {ingest['json_loads_us_per_event']:.2f} us/event",
                    f"{ingest['normalise_ratio_to_json']:.2f}",
                )
            )
            if ingest.get("anymail_ratio_to_json") is not None:
                rows.append(
                    (
                        "ingest: normalise ratio vs django-anymail's",
                        f"{ingest['normalise_ratio_to_json']:.2f}",
                        f"anymail {ingest['anymail_ratio_to_json']:.2f}",
                        f"{ingest['normalise_ratio_to_json'] / ingest['anymail_ratio_to_json']:.2f}",
                    )
                )
    console = results.get("console")
    if console:
        base = console["get_one_ms"]
        for label, key in (
            ("first page", "list_first_page"),
            ("failed only", "list_failed_page"),
            ("one route", "list_one_route"),
        ):
            rows.append(
                (
                    f"console, {console['deliveries']} deliveries: {label}",
                    f"{console[key + '_ms']:.0f} ms, {console[key + '_requests']} requests, "
                    f"{console[key + '_items_read']} items",
                    f"one GET {base:.0f} ms",
                    f"{console[key + '_ms'] / base:.1f}",
                )
            )
    scale = results.get("scale")
    if scale and scale.get("hottest_key_share") is not None:
        rows.append(
            (
                f"hottest key share ({scale['hottest_key_in']} {scale['hottest_key']})",
                f"{scale['hottest_key_share']:.3f}",
                f"goal {scale['goal']:g}",
                f"{scale['ratio_to_goal']:.1f}",
            )
        )
    size = results.get("layer_size")
    if size:
        rows.append(
            (
                "layer size",
                f"{size['layer_mb']:.1f} MB",
                f"unpruned {size['layer_unpruned_mb']:.1f} MB",
                f"{size['layer_mb'] / size['layer_unpruned_mb']:.2f}",
            )
        )
        rows.append(
            (
                "layer size vs budget",
                f"{size['layer_mb']:.1f} MB",
                f"budget {size['budget_mb']:g} MB",
                f"{size['layer_mb'] / size['budget_mb']:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows + [("figure", "value", "baseline (same run)", "ratio")]) for i in range(4)]
    print()
    for row in [("figure", "value", "baseline (same run)", "ratio"), *rows]:
        print(
            "  " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        )
    print(f"\n(also in {REPO_ROOT / 'bench' / 'results.json'})")


if __name__ == "__main__":
    main()
