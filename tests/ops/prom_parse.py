"""Parses Prometheus text exposition from stdin with the official Python client's parser
(prometheus_client.parser, Debian python3-prometheus-client) and prints its samples as JSON.
A malformed exposition raises, and the process exits non-zero."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        v = s.value
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels,
                    "value": v if math.isfinite(v) else str(v)})
print(json.dumps(out))
