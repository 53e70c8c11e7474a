"""A health prober in a process of its own, as a load balancer is: `python -m bench.probe
URL SECONDS` GETs URL every 50 ms and prints the latencies (s) as JSON. Probing from the
load generator's own event loop would time that loop's delays too. The standard library's
client on one kept-alive connection: the prober shares the 2 cores with the app it
measures, and httpx costs several times its CPU per request."""

import http.client
import json
import sys
import time
from urllib.parse import urlsplit


def main() -> None:
    url, seconds = urlsplit(sys.argv[1]), float(sys.argv[2])
    assert url.hostname is not None
    latencies = []
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        connection.request("GET", url.path)
        response = connection.getresponse()
        body = response.read()
        latencies.append(time.perf_counter() - started)
        assert response.status == 200, body
        time.sleep(0.05)
    connection.close()
    print(json.dumps(latencies))


if __name__ == "__main__":
    main()
