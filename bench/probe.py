"""A health prober in a process of its own, as a load balancer is: `python -m bench.probe
URL SECONDS` GETs URL every 50 ms and prints the latencies (s) as JSON. Probing from the
load generator's own event loop would time that loop's delays too."""

import json
import sys
import time

import httpx


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    latencies = []
    with httpx.Client(timeout=10) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = client.get(url)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            time.sleep(0.05)
    print(json.dumps(latencies))


if __name__ == "__main__":
    main()
